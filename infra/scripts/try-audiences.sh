#!/usr/bin/env bash
# Audiences and campaigns tried as a new user would, against a running `make dev` (run from the
# repository root; the outbox is `.plunk/outbox`): 300 contacts with data (every 10th
# unsubscribed, every 7th with a tracked `upgraded` event), a DYNAMIC segment with a nested group
# and an event condition, its count and listing against the expected members computed here, a
# test send, the campaign to the segment (one email per subscribed member in the outbox, with
# List-Unsubscribe and the footer), its stats, and a scheduled campaign cancelled. Prints what it
# finds; read it against the "expected" line.
set -uo pipefail
B=http://127.0.0.1:8080
TMP=$(mktemp)
trap 'rm -f "$TMP"' EXIT
PROJECT=$(cargo run -q -p plunk-local --bin plunk -- project create --name Done300 --json)
SK=$(echo "$PROJECT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secretKey"])')
PK=$(echo "$PROJECT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["publicKey"])')
H=(-H "Authorization: Bearer $SK" -H 'Content-Type: application/json')
DOMAIN=done-$(date +%s).example.com
DID=$(curl -s -X POST $B/domains "${H[@]}" -d "{\"domain\":\"$DOMAIN\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')
curl -s -o /dev/null -X POST $B/domains/$DID/verify "${H[@]}"
# 300 contacts: plan by i%3, age 20+i%40, every 10th unsubscribed; every 7th tracks "upgraded".
for i in $(seq 0 299); do
  plans=(free pro team); plan=${plans[$((i%3))]}; age=$((20 + i%40)); sub=true; [ $((i%10)) -eq 0 ] && sub=false
  curl -s -o /dev/null -w '%{http_code}\n' -X POST $B/contacts "${H[@]}" \
    -d "{\"email\":\"c$i@done.example\",\"subscribed\":$sub,\"data\":{\"plan\":\"$plan\",\"age\":$age,\"firstName\":\"C$i\"}}"
done | sort | uniq -c
for i in $(seq 0 7 299); do
  curl -s -o /dev/null -w '%{http_code}\n' -X POST $B/v1/track -H "Authorization: Bearer $PK" -H 'Content-Type: application/json' \
    -d "{\"event\":\"upgraded\",\"email\":\"c$i@done.example\"}"
done | sort | uniq -c
# Expected: age > 30 AND (plan == pro OR upgraded within 7 days)
python3 - > "$TMP" <<'PY'
m=[i for i in range(300) if (20+i%40)>30 and (i%3==1 or i%7==0)]
print(len(m), len([i for i in m if i%10!=0]))
PY
read EXP EXP_SUB < "$TMP"
echo "expected members $EXP, subscribed $EXP_SUB"
SEG=$(curl -s -X POST $B/segments "${H[@]}" -d '{"name":"Older pro or upgraded","condition":{"logic":"AND","groups":[{"filters":[{"field":"data.age","operator":"greaterThan","value":30}]},{"filters":[],"conditions":{"logic":"OR","groups":[{"filters":[{"field":"data.plan","operator":"equals","value":"pro"}]},{"filters":[{"field":"event.upgraded","operator":"triggeredWithin","value":7,"unit":"days"}]}]}}]}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')
sleep 4
curl -s $B/segments/$SEG "${H[@]}" | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print("segment memberCount", d["memberCount"])'
N=0; CUR=""
while :; do
  R=$(curl -s "$B/segments/$SEG/contacts?limit=100${CUR:+&cursor=$CUR}" "${H[@]}")
  N=$((N + $(echo "$R" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["items"]))')))
  CUR=$(echo "$R" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"].get("cursor") or "")')
  [ -z "$CUR" ] && break
done
echo "segment contacts listed $N"
OUT=.plunk/outbox
before=$(ls $OUT 2>/dev/null | wc -l)
CID=$(curl -s -X POST $B/campaigns "${H[@]}" -d '{"name":"Launch","type":"MARKETING","subject":"Hi {{ data.firstName }}","body":"<p>We launched.</p>","from":"news@'$DOMAIN'","audienceType":"SEGMENT","segmentId":"'$SEG'"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')
curl -s -X POST $B/campaigns/$CID/test "${H[@]}" -d '{"email":"me@done.example"}' -w '\n'
sleep 2
after_test=$(ls $OUT | wc -l); echo "test send: outbox +$((after_test-before))"
curl -s -X POST $B/campaigns/$CID/send "${H[@]}" -d '{}' -w '\n' | head -c 200; echo
for t in $(seq 1 30); do
  S=$(curl -s $B/campaigns/$CID/stats "${H[@]}")
  st=$(echo "$S" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["status"])' 2>/dev/null || echo "?")
  [ "$st" = SENT ] && break; sleep 2
done
echo "$S"
sleep 2
after=$(ls $OUT | wc -l); echo "campaign: outbox +$((after-after_test)) (expected $EXP_SUB)"
grep -l "Subject: Hi C" $OUT/*.eml | xargs grep -h "^To:" | sort | uniq -d | head -3 | sed 's/^/DUPLICATE /'
F=$(grep -l "Subject: Hi C" $OUT/*.eml | head -1)
grep -c "List-Unsubscribe:" "$F" | sed 's/^/List-Unsubscribe headers in one email: /'
grep -ci "unsubscribe" "$F" | sed 's/^/lines mentioning unsubscribe: /'
# A scheduled campaign can be cancelled.
C2=$(curl -s -X POST $B/campaigns "${H[@]}" -d '{"name":"Later","subject":"Later","body":"<p>Later</p>","from":"news@'$DOMAIN'","audienceType":"ALL"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')
AT=$(python3 -c 'import datetime; print((datetime.datetime.utcnow()+datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))')
curl -s -X POST $B/campaigns/$C2/send "${H[@]}" -d "{\"scheduledFor\":\"$AT\"}" | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print("scheduled:", d["campaign"]["status"], d["campaign"]["scheduledFor"])'
curl -s -X POST $B/campaigns/$C2/cancel "${H[@]}" | python3 -c 'import json,sys; print("cancelled:", json.load(sys.stdin)["data"]["status"])'
