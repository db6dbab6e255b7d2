//! The project and key commands (admin-cli.md §3).

use crate::cli::{
    Cli, Command, KeysCommand, ProjectCommand, RotateType, SecretKindArg, SecretsCommand,
};
use crate::output::{emit, Failure};
use plunk_domain::project::{
    valid_language, valid_project_name, ApiKeyRecord, KeyType, Project, Tracking,
    DEFAULT_RATE_LIMIT, MAX_RATE_LIMIT,
};
use plunk_store::{ProjectError, SecretKind, Store};
use serde_json::{json, Value};
use uuid::Uuid;

/// Longest grace period of a rotation.
const MAX_GRACE_SECONDS: i64 = 7 * 24 * 3600;

/// Runs a project or keys command.
pub async fn run(cli: &Cli) -> Result<(), Failure> {
    let store = cli.store.config()?.open().await?;
    match &cli.command {
        Command::Project(cmd) => project(cli, &store, cmd).await,
        Command::Keys(cmd) => keys(cli, &store, cmd).await,
        Command::Secrets(cmd) => secrets(cli, &store, cmd).await,
        Command::Serve(_) | Command::Simulate(_) => {
            unreachable!("serve and simulate are dispatched separately")
        }
    }
}

fn parse_project_id(raw: &str) -> Result<Uuid, Failure> {
    plunk_domain::id::parse_id(raw).ok_or_else(|| Failure::not_found(format!("no project {raw}")))
}

fn check_name(name: &str) -> Result<(), Failure> {
    valid_project_name(name)
        .then_some(())
        .ok_or_else(|| Failure::usage("--name must be 1-100 characters"))
}

fn check_rate(n: u32) -> Result<u32, Failure> {
    (1..=MAX_RATE_LIMIT)
        .contains(&n)
        .then_some(n)
        .ok_or_else(|| Failure::usage(format!("--rate-limit must be 1-{MAX_RATE_LIMIT}")))
}

fn parse_tracking(raw: &str) -> Result<Tracking, Failure> {
    raw.parse().map_err(Failure::usage)
}

fn check_language(tag: &str) -> Result<(), Failure> {
    valid_language(tag)
        .then_some(())
        .ok_or_else(|| Failure::usage("--language must look like en or pt-BR"))
}

/// Parses `0`, `30m`, `24h`, `7d` (also `s`); at most 7 days.
pub fn parse_duration(raw: &str) -> Result<chrono::Duration, Failure> {
    let bad = || {
        Failure::usage(format!(
            "invalid duration '{raw}' (use e.g. 0, 30m, 24h, 7d)"
        ))
    };
    if raw == "0" {
        return Ok(chrono::Duration::zero());
    }
    let (digits, unit) = raw.split_at(raw.len().checked_sub(1).ok_or_else(bad)?);
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        "d" => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if !(0..=MAX_GRACE_SECONDS).contains(&seconds) {
        return Err(Failure::usage("--grace must be between 0 and 7d"));
    }
    Ok(chrono::Duration::seconds(seconds))
}

fn key_json(k: &ApiKeyRecord) -> Value {
    json!({
        "keyId": k.key_id,
        "type": k.key_type,
        "hint": k.hint,
        "createdAt": k.created_at,
        "expiresAt": k.expires_at,
        "revokedAt": k.revoked_at,
    })
}

fn project_text(p: &Project) -> String {
    format!(
        "id:                 {}\nname:               {}\nrateLimitPerMinute: {}\ntracking:           {}\nlanguage:           {}\ndisabled:           {}{}\ncreatedAt:          {}\nupdatedAt:          {}",
        p.id,
        p.name,
        p.rate_limit_per_minute,
        serde_json::to_value(p.tracking).unwrap_or_default().as_str().unwrap_or_default(),
        p.language,
        p.disabled,
        p.disabled_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
        p.created_at,
        p.updated_at,
    )
}

fn key_line(k: &ApiKeyRecord) -> String {
    let state = match (k.revoked_at, k.expires_at) {
        (Some(at), _) => format!("revoked {at}"),
        (None, Some(at)) => format!("expires {at}"),
        (None, None) => "active".into(),
    };
    format!(
        "{}  {:<6}  {}  created {}  {state}",
        k.key_id,
        json!(k.key_type).as_str().unwrap_or_default(),
        k.hint,
        k.created_at
    )
}

async fn require_project(store: &Store, id: Uuid) -> Result<Project, Failure> {
    store
        .projects()
        .get(id)
        .await?
        .ok_or_else(|| Failure::not_found(format!("no project {id}")))
}

async fn project(cli: &Cli, store: &Store, cmd: &ProjectCommand) -> Result<(), Failure> {
    let json = cli.json;
    match cmd {
        ProjectCommand::Create {
            name,
            rate_limit,
            tracking,
            language,
        } => {
            check_name(name)?;
            let rate = check_rate(rate_limit.unwrap_or(DEFAULT_RATE_LIMIT))?;
            let tracking = tracking
                .as_deref()
                .map(parse_tracking)
                .transpose()?
                .unwrap_or(Tracking::Enabled);
            let language = language.as_deref().unwrap_or("en");
            check_language(language)?;
            let (project, secret, public) = store
                .projects()
                .create(name, rate, tracking, language)
                .await?;
            emit(
                json,
                &json!({ "project": project, "secretKey": secret.expose(), "publicKey": public.expose() }),
                || {
                    format!(
                    "{}\n\nsecretKey: {}\npublicKey: {}\n\nThese keys are shown once; store them now.",
                    project_text(&project),
                    secret.expose(),
                    public.expose()
                )
                },
            );
        }
        ProjectCommand::List => {
            let projects = store.projects().list().await?;
            let items: Vec<Value> = projects
                .iter()
                .map(|p| json!({ "id": p.id, "name": p.name, "disabled": p.disabled, "createdAt": p.created_at }))
                .collect();
            emit(json, &json!({ "projects": items }), || {
                if projects.is_empty() {
                    return "no projects".into();
                }
                projects
                    .iter()
                    .map(|p| {
                        format!(
                            "{}  {}  {}{}",
                            p.id,
                            p.created_at,
                            p.name,
                            if p.disabled { "  (disabled)" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ProjectCommand::Show { project_id } => {
            let project = require_project(store, parse_project_id(project_id)?).await?;
            let keys = store.projects().keys(project.id, false).await?;
            emit(
                json,
                &json!({ "project": project, "keys": keys.iter().map(key_json).collect::<Vec<_>>() }),
                || {
                    let lines: Vec<String> = keys.iter().map(key_line).collect();
                    format!(
                        "{}\n\nactive keys:\n{}",
                        project_text(&project),
                        lines.join("\n")
                    )
                },
            );
        }
        ProjectCommand::Update {
            project_id,
            name,
            rate_limit,
            tracking,
            language,
        } => {
            let id = parse_project_id(project_id)?;
            if let Some(n) = name {
                check_name(n)?;
            }
            let rate = rate_limit.map(check_rate).transpose()?;
            let tracking = tracking.as_deref().map(parse_tracking).transpose()?;
            if let Some(l) = language {
                check_language(l)?;
            }
            let project = store
                .projects()
                .update(id, |p| {
                    if let Some(n) = name {
                        p.name = n.clone();
                    }
                    if let Some(r) = rate {
                        p.rate_limit_per_minute = r;
                    }
                    if let Some(t) = tracking {
                        p.tracking = t;
                    }
                    if let Some(l) = language {
                        p.language = l.clone();
                    }
                    Ok(())
                })
                .await?;
            emit(json, &json!({ "project": project }), || {
                project_text(&project)
            });
        }
        ProjectCommand::Disable { project_id, reason } => {
            let id = parse_project_id(project_id)?;
            if reason
                .as_ref()
                .is_some_and(|r| r.chars().count() > 200 || r.is_empty())
            {
                return Err(Failure::usage("--reason must be 1-200 characters"));
            }
            let project = store
                .projects()
                .update(id, |p| {
                    if p.disabled {
                        return Err(ProjectError::Conflict(format!(
                            "project {} is already disabled",
                            p.id
                        )));
                    }
                    p.disabled = true;
                    p.disabled_reason = Some(reason.clone().unwrap_or_else(|| "MANUAL".into()));
                    Ok(())
                })
                .await?;
            emit(json, &json!({ "project": project }), || {
                project_text(&project)
            });
        }
        ProjectCommand::Enable { project_id } => {
            let id = parse_project_id(project_id)?;
            let project = store
                .projects()
                .update(id, |p| {
                    if !p.disabled {
                        return Err(ProjectError::Conflict(format!(
                            "project {} is not disabled",
                            p.id
                        )));
                    }
                    p.disabled = false;
                    p.disabled_reason = None;
                    Ok(())
                })
                .await?;
            emit(json, &json!({ "project": project }), || {
                project_text(&project)
            });
        }
    }
    Ok(())
}

async fn secrets(cli: &Cli, store: &Store, cmd: &SecretsCommand) -> Result<(), Failure> {
    let kind = match cmd {
        SecretsCommand::Rotate { kind } => kind,
        SecretsCommand::Migrate => {
            let moved = store.migrate_legacy_secrets().await?;
            emit(cli.json, &json!({ "moved": moved }), || {
                format!("moved {moved} secrets item(s) to their own partitions")
            });
            return Ok(());
        }
    };
    let kinds: &[(SecretKind, &str)] = match kind {
        SecretKindArg::Cursor => &[(SecretKind::Cursor, "cursor")],
        SecretKindArg::PageTokens => &[(SecretKind::PageTokens, "pageTokens")],
        SecretKindArg::All => &[
            (SecretKind::Cursor, "cursor"),
            (SecretKind::PageTokens, "pageTokens"),
        ],
    };
    let mut rotated = serde_json::Map::new();
    let mut lines = Vec::new();
    for (kind, name) in kinds {
        let r = store.rotate_secrets(*kind).await?;
        let from = chrono::DateTime::from_timestamp(r.active_from, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        lines.push(format!(
            "{name}: secret {} signs from {from}; {} secrets kept",
            r.id, r.kept
        ));
        rotated.insert(
            (*name).into(),
            json!({ "id": r.id, "activeFrom": from, "kept": r.kept }),
        );
    }
    emit(cli.json, &Value::Object(rotated), || lines.join("\n"));
    Ok(())
}

async fn keys(cli: &Cli, store: &Store, cmd: &KeysCommand) -> Result<(), Failure> {
    let json = cli.json;
    match cmd {
        KeysCommand::List { project, all } => {
            let id = parse_project_id(project)?;
            require_project(store, id).await?;
            let keys = store.projects().keys(id, *all).await?;
            emit(
                json,
                &json!({ "keys": keys.iter().map(key_json).collect::<Vec<_>>() }),
                || keys.iter().map(key_line).collect::<Vec<_>>().join("\n"),
            );
        }
        KeysCommand::Rotate {
            project,
            key_type,
            grace,
        } => {
            let id = parse_project_id(project)?;
            let grace = parse_duration(grace)?;
            let types: &[KeyType] = match key_type {
                RotateType::Secret => &[KeyType::Secret],
                RotateType::Public => &[KeyType::Public],
                RotateType::Both => &[KeyType::Secret, KeyType::Public],
            };
            let rotated = store.projects().rotate(id, types, grace).await?;
            let created: Vec<Value> = rotated
                .created
                .iter()
                .map(|(plain, record)| {
                    let mut v = key_json(record);
                    v["key"] = json!(plain.expose());
                    v
                })
                .collect();
            let replaced: Vec<Value> = rotated
                .replaced
                .iter()
                .map(|k| json!({ "keyId": k.key_id, "type": k.key_type, "expiresAt": k.expires_at, "revokedAt": k.revoked_at }))
                .collect();
            emit(
                json,
                &json!({ "created": created, "replaced": replaced }),
                || {
                    let mut out: Vec<String> = rotated
                        .created
                        .iter()
                        .map(|(plain, r)| {
                            format!(
                                "new {} key {}: {}",
                                json!(r.key_type).as_str().unwrap_or_default(),
                                r.key_id,
                                plain.expose()
                            )
                        })
                        .collect();
                    for k in &rotated.replaced {
                        out.push(match (k.revoked_at, k.expires_at) {
                            (Some(at), _) => format!("old key {} revoked at {at}", k.key_id),
                            (_, Some(at)) => format!("old key {} expires at {at}", k.key_id),
                            _ => format!("old key {}", k.key_id),
                        });
                    }
                    out.push("New keys are shown once; store them now.".into());
                    out.join("\n")
                },
            );
        }
        KeysCommand::Revoke { project, key } => {
            let id = parse_project_id(project)?;
            let key_id = plunk_domain::id::parse_id(key)
                .ok_or_else(|| Failure::not_found(format!("no key {key}")))?;
            require_project(store, id).await?;
            let active = store.projects().keys(id, false).await?;
            let target = active.iter().find(|k| k.key_id == key_id);
            let last_secret = target.is_some_and(|t| {
                t.key_type == KeyType::Secret
                    && active
                        .iter()
                        .filter(|k| k.key_type == KeyType::Secret)
                        .count()
                        == 1
            });
            if last_secret && !cli.yes {
                return Err(Failure::usage(
                    "this is the project's last active secret key; pass --yes to revoke it (then run 'plunk keys rotate' to reach the project again)",
                ));
            }
            let record = store.projects().revoke(id, key_id).await?;
            emit(
                json,
                &json!({ "keyId": record.key_id, "revokedAt": record.revoked_at }),
                || {
                    format!(
                        "revoked {} at {}",
                        record.key_id,
                        record.revoked_at.map(|t| t.to_string()).unwrap_or_default()
                    )
                },
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_are_capped_at_seven_days() {
        assert_eq!(parse_duration("0").unwrap(), chrono::Duration::zero());
        assert_eq!(
            parse_duration("30m").unwrap(),
            chrono::Duration::minutes(30)
        );
        assert_eq!(parse_duration("24h").unwrap(), chrono::Duration::hours(24));
        assert_eq!(parse_duration("7d").unwrap(), chrono::Duration::days(7));
        assert_eq!(parse_duration("8d").unwrap_err().code, 1);
        assert_eq!(parse_duration("abc").unwrap_err().code, 1);
        assert_eq!(parse_duration("").unwrap_err().code, 1);
    }
}
