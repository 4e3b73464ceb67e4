//! `--files-from` with many http(s):// URLs on one server (the in-test origin, which numbers
//! its connections): one HTTP client per host, so the entries share connections instead of
//! opening one each.

use test_support::origin::{Object, Origin, Route};

use crate::common::*;

const ENTRIES: usize = 24;

fn serve(origin: &Origin) -> Vec<Vec<u8>> {
    (0..ENTRIES)
        .map(|i| {
            let body = data(2000 + 37 * i, 900 + i as u64);
            origin.route(
                &format!("/f/{i:02}.bin"),
                Route::Object(Object {
                    body: body.clone(),
                    etag: Some(format!("\"e{i}\"")),
                    ..Object::default()
                }),
            );
            body
        })
        .collect()
}

/// `resume-get --json --jobs 1 --files-from LIST DEST`.
fn run_list(list: &std::path::Path, dest: &std::path::Path, what: &str) -> Outcome {
    run(
        bare_cmd()
            .args(["--json", "--jobs", "1", "--files-from"])
            .arg(list)
            .arg(dest),
        what,
    )
}

#[test]
fn a_list_of_urls_on_one_host_shares_its_connections() {
    let origin = Origin::start();
    let want = serve(&origin);
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("urls.txt");
    let urls: Vec<String> = (0..ENTRIES)
        .map(|i| origin.url(&format!("/f/{i:02}.bin")))
        .collect();
    std::fs::write(&list, urls.join("\n")).unwrap();
    let dest = dir.path().join("out");
    let out = run_list(&list, &dest, "--files-from http urls");
    out.expect_code(0);
    let fin = out.event("job_finished");
    assert_eq!(u(&fin["done"]), ENTRIES as u64, "{fin}");
    let host = urls[0]
        .split_once("://")
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    for (i, body) in want.iter().enumerate() {
        assert_file(
            &dest.join(&host).join(format!("f/{i:02}.bin")),
            body,
            "entry",
        );
    }
    let seen = origin.requests();
    assert!(
        seen.len() >= 2 * ENTRIES,
        "a stat and a GET each: {}",
        seen.len()
    );
    // With one client per entry every entry opened its own connection (ENTRIES or more);
    // one client for the host keeps a few open (a stat and a download may overlap).
    let mut connections: Vec<usize> = seen.iter().map(|r| r.connection).collect();
    connections.sort_unstable();
    connections.dedup();
    assert!(
        connections.len() <= 4,
        "{} connections for {} requests",
        connections.len(),
        seen.len()
    );
    // The job completed; rerun, each file's own record (its entry's object, unchanged since)
    // spares the HEAD per entry: no request at all.
    let before = seen.len();
    let again = run_list(&list, &dest, "--files-from http urls, rerun");
    again.expect_code(0);
    let fin = again.event("job_finished");
    assert_eq!(u(&fin["up_to_date"]), ENTRIES as u64, "{fin}");
    assert_eq!(origin.requests().len(), before, "no request on the rerun");
}

#[test]
fn a_single_download_records_its_object_with_the_file() {
    let origin = Origin::start();
    let want = serve(&origin);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("one.bin");
    let out = run(
        bare_cmd()
            .args(["--json"])
            .arg(origin.url("/f/03.bin"))
            .arg(&dest),
        "one http download",
    );
    out.expect_code(0);
    assert_file(&dest, &want[3], "one.bin");
    let rec = resume_core::recorded::recorded_object(&dest)
        .expect("the file records its object (a file system with user xattrs)");
    assert_eq!(rec.etag.as_deref(), Some("\"e3\""));
    assert_eq!(rec.size, want[3].len() as u64);
}
