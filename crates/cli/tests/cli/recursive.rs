//! `resume-get -r`: usage errors before any request, and (once a lister is wired for the
//! scheme) whole-prefix jobs end to end.

use crate::common::*;

fn expect_refused(args: &[&str], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let what = args.join(" ");
    let out = run(bare_cmd().args(args).arg(&dest), &what);
    out.expect_code(2).stderr_has(needles);
    assert!(!dest.exists(), "{what}: nothing may be created");
}

#[test]
fn single_object_options_and_bad_batch_options_are_usage_errors_before_any_request() {
    for (args, needles) in [
        (
            &["-r", "--range", "0-9", "s3://b/p/"][..],
            &["--range", "cannot be used with -r"][..],
        ),
        (
            &["-r", "--version-id", "v1", "s3://b/p/"],
            &["--version-id", "cannot be used with -r"],
        ),
        (
            &["-r", "--no-checkpoint", "s3://b/p/"],
            &["--no-checkpoint", "cannot be used with -r"],
        ),
        (
            &["-r", "--jobs", "0", "s3://b/p/"],
            &["--jobs must be at least 1"],
        ),
        (&["--shard", "1/2", "s3://b/k"], &["--recursive"]),
        (&["--include", "*.csv", "s3://b/k"], &["--recursive"]),
        (
            &["-r", "--update", "--overwrite", "s3://b/p/"],
            &["--update", "--overwrite"],
        ),
        (
            &["-r", "https://example.invalid/dir/"],
            &["an HTTP server cannot list"],
        ),
        (&["-r", "ftp://h/p/"], &["unsupported source scheme"]),
    ] {
        expect_refused(args, needles);
    }
}

#[test]
fn a_folder_url_without_r_points_to_r() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        bare_cmd().arg("file:///tmp/some-folder/").arg(dir.path()),
        "folder without -r",
    );
    out.expect_code(2)
        .stderr_has(&["names a folder", "with -r"]);
}
