//! `access_coverage <record>`: every partition a function is granted is one its code uses. After
//! the whole test run has recorded the patterns the guarded tables let through
//! (`PLUNK_ACCESS_RECORD`, set by `infra/scripts/test.sh`), none may be left unused; exits 1 and
//! lists them otherwise. Run by `make test` after the suite.

use plunk_store::access::AccessProfile;
use std::collections::BTreeSet;

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: access_coverage <record file>");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let used: BTreeSet<&str> = text.lines().collect();
    let mut unused = Vec::new();
    for profile in AccessProfile::all() {
        for pattern in profile.patterns() {
            let line = format!("{} {pattern}", profile.name);
            if !used.contains(line.as_str()) {
                unused.push(line);
            }
        }
    }
    if !unused.is_empty() {
        eprintln!(
            "granted but never used by any test (remove the grant or test the path):\n{}",
            unused.join("\n")
        );
        std::process::exit(1);
    }
    println!("access coverage: every granted partition pattern was used by the tests");
}
