//! `kill -9` at exact system calls, with strace's fault injection (`-e inject=…:signal=KILL`,
//! `-P PATH`): the instants where a crash is most likely to leave state the next run cannot
//! use — around the checkpoint's claim on the temp file, the temp file's creation, the final
//! rename and the checkpoint's deletion, and the commit of a part's beginning (the temp file's
//! fdatasync, then the checkpoint append). Every next run must end with the exact bytes, never
//! refuse its own temp file, and leave nothing but DEST.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use e2e_tests::support::*;

const KEY: &str = "kill/object.bin";
const ARGS: [&str; 4] = ["--part-size", "1000", "--jobs", "1"];

/// strace, found on this process's PATH (the runs get a cleared environment).
fn strace() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("strace"))
        .find(|p| p.is_file())
        .expect("strace is not installed: `apt-get install strace` (.ci/run installs it)")
}

/// Runs the download, killed with SIGKILL on entering the `nth` call of `syscalls` on one
/// thread (strace counts per thread) (that
/// touches `path`, when given; strace matches a path against a call's first path argument
/// only, so renames *into* a path are counted without it). The call itself does not happen.
fn killed_at(c: &Case, syscalls: &str, path: Option<&Path>, nth: u32) -> Outcome {
    killed_at_with(c, &ARGS, syscalls, path, nth)
}

fn killed_at_with(
    c: &Case,
    args: &[&str],
    syscalls: &str,
    path: Option<&Path>,
    nth: u32,
) -> Outcome {
    let mut wrapper: Vec<OsString> = vec![
        strace().into(),
        "-f".into(),
        "-qq".into(),
        "-o".into(),
        "/dev/null".into(),
    ];
    if let Some(path) = path {
        wrapper.extend(["-P".into(), path.into()]);
    }
    wrapper.extend([
        "-e".into(),
        format!("trace={syscalls}").into(),
        "-e".into(),
        format!("inject={syscalls}:signal=KILL:when={nth}").into(),
    ]);
    let out = c.get().args(args).under(wrapper).run();
    assert_eq!(
        out.code(),
        None,
        "the run should have been killed at {syscalls} #{nth} of {path:?}; stderr: {}",
        out.stderr
    );
    out
}

/// The next run: exit 0, the exact object, nothing left but DEST; returns its outcome.
#[track_caller]
fn next_run_completes(c: &Case, what: &str) -> Outcome {
    let out = c.get().args(ARGS).run();
    out.expect_ok();
    assert_file_is(&c.dest, &c.content, what);
    let left: Vec<String> = listing(c.dir.path()).into_keys().collect();
    assert_eq!(left, vec!["object.bin".to_string()], "{what}");
    out
}

const RENAME: &str = "rename,renameat,renameat2";

#[test]
fn killed_while_claiming_or_creating_the_temp_file_the_next_run_starts_over() {
    // The 1st rename of the run is the checkpoint claiming the temp file before it exists
    // (killed before it lands); the 2nd the save recording the new, still empty, temp file's
    // identity (the 3rd would be the final rename).
    for nth in [1, 2] {
        let c = case(KEY, 5000, 30 + u64::from(nth));
        killed_at(&c, RENAME, None, nth);
        if nth == 2 {
            assert_eq!(
                std::fs::metadata(rgpart(&c.dest)).map(|m| m.len()).ok(),
                Some(0),
                "killed after creating the temp file, before recording it"
            );
        }
        let out = next_run_completes(&c, &format!("killed at checkpoint rename #{nth}"));
        assert_eq!(out.num("started", "parts_reused"), 0);
    }
    // Just created, not yet locked. (strace counts `when=` per thread: only calls made on one
    // thread without an await between them are counted reliably, hence flock, not openat.)
    let c = case(KEY, 5000, 33);
    killed_at(&c, "flock", Some(&rgpart(&c.dest)), 1);
    assert_eq!(
        std::fs::metadata(rgpart(&c.dest)).map(|m| m.len()).ok(),
        Some(0),
        "killed right after creating the temp file"
    );
    next_run_completes(&c, "killed at the temp file's lock");
}

#[test]
fn killed_at_the_final_rename_the_next_run_fetches_nothing() {
    let c = case(KEY, 5000, 34);
    killed_at(&c, RENAME, Some(&rgpart(&c.dest)), 1);
    assert!(!c.dest.exists());
    let before = c.server.gets(KEY).len();
    let out = next_run_completes(&c, "killed at the final rename");
    assert_eq!(out.num("completed", "fetched_bytes"), 0);
    assert_eq!(c.server.gets(KEY).len(), before, "no part fetched again");
}

#[test]
fn killed_before_deleting_the_checkpoint_the_next_run_finishes_at_once() {
    let c = case(KEY, 5000, 35);
    killed_at(&c, "unlink,unlinkat", Some(&rgcp(&c.dest)), 1);
    assert_file_is(&c.dest, &c.content, "renamed before the kill");
    assert!(
        rgcp(&c.dest).exists(),
        "killed before the checkpoint was deleted"
    );
    let before = c.server.gets(KEY).len();
    let out = next_run_completes(&c, "killed before deleting the checkpoint");
    assert_eq!(out.num("completed", "fetched_bytes"), 0);
    assert_eq!(c.server.gets(KEY).len(), before, "nothing fetched");
    let note = out.must_event("checkpoint_note")["note"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        note.contains("already this download's finished file"),
        "{note}"
    );
}

/// Parts of 2 MiB: the first beginning is committed 512 KiB into the first part.
const SUB_ARGS: [&str; 4] = ["--part-size", "2097152", "--jobs", "1"];
const SUB_SIZE: usize = 3 << 20;

#[test]
fn killed_inside_the_commit_of_a_parts_beginning_nothing_unsynced_is_claimed() {
    // The temp file's fdatasync that precedes the first partial record (the background sync
    // of done parts comes later: after a part is done), then the checkpoint append that
    // follows it.
    for (n, (syscalls, file)) in [
        ("fdatasync,fsync", rgpart as fn(&Path) -> PathBuf),
        ("write,pwrite64,writev", rgcp),
    ]
    .into_iter()
    .enumerate()
    {
        let c = case(KEY, SUB_SIZE, 40 + n as u64);
        killed_at_with(&c, &SUB_ARGS, syscalls, Some(&file(&c.dest)), 1);
        let out = c.get().args(SUB_ARGS).run();
        out.expect_ok();
        assert_file_is(&c.dest, &c.content, &format!("killed at {syscalls}"));
        let reused = out.num("started", "reused_bytes");
        // The commit was killed before it recorded anything: only whole parts (recorded done
        // after their writes, not gated by that commit) may be reused, no beginning.
        assert_eq!(
            reused % (2 << 20),
            0,
            "killed at {syscalls}: {reused} bytes reused, a beginning the killed commit \
             never recorded"
        );
        assert_eq!(
            out.num("completed", "fetched_bytes") + reused,
            SUB_SIZE as u64
        );
        let left: Vec<String> = listing(c.dir.path()).into_keys().collect();
        assert_eq!(left, vec!["object.bin".to_string()]);
    }
}

const NO_CHECKPOINT: [&str; 5] = ["--part-size", "1000", "--jobs", "1", "--no-checkpoint"];

/// Without a checkpoint nothing can resume a temp file, and nothing proves a named one is
/// this download's: it stays unnamed (`O_TMPFILE`) until complete, so a kill at any moment
/// leaves nothing for the next run to refuse (before, a `DEST.rgpart` that every later run
/// refused until the user deleted it).
#[test]
fn killed_without_a_checkpoint_nothing_is_left_and_the_next_run_starts_over() {
    // The first write into the temp file; the link that names the finished file.
    for (n, syscalls) in ["pwrite64,pwritev,pwritev2", "linkat"]
        .into_iter()
        .enumerate()
    {
        let c = case(KEY, 5000, 50 + n as u64);
        killed_at_with(&c, &NO_CHECKPOINT, syscalls, None, 1);
        assert!(
            listing(c.dir.path()).is_empty(),
            "killed at {syscalls}: {:?}",
            listing(c.dir.path())
        );
        // Once without a checkpoint again, once with one: neither finds anything to refuse.
        let out = c.get().args(NO_CHECKPOINT).run();
        out.expect_ok();
        assert_eq!(out.num("started", "reused_bytes"), 0);
        assert_file_is(&c.dest, &c.content, &format!("killed at {syscalls}"));
        std::fs::remove_file(&c.dest).expect("remove DEST");
        next_run_completes(&c, &format!("killed at {syscalls}, then with a checkpoint"));
    }
}

/// The same when DEST exists: it is replaced only by the complete file (a link at the temp
/// file's name, renamed over it); killed before, DEST is as it was and nothing else is there.
#[test]
fn killed_without_a_checkpoint_over_an_existing_dest_leaves_it_as_it_was() {
    // The first write; the link at DEST (refused: it exists); the link at the temp file's name.
    for (n, (syscalls, nth)) in [
        ("pwrite64,pwritev,pwritev2", 1),
        ("linkat", 1),
        ("linkat", 2),
    ]
    .into_iter()
    .enumerate()
    {
        let c = case(KEY, 5000, 60 + n as u64);
        let old = b"the previous version of the file".to_vec();
        std::fs::write(&c.dest, &old).expect("write the old DEST");
        killed_at_with(&c, &NO_CHECKPOINT, syscalls, None, nth);
        let what = format!("killed at {syscalls} #{nth}");
        assert_file_is(&c.dest, &old, &what);
        let left: Vec<String> = listing(c.dir.path()).into_keys().collect();
        assert_eq!(left, vec!["object.bin".to_string()], "{what}");
        let out = c.get().args(NO_CHECKPOINT).run();
        out.expect_ok();
        assert_file_is(&c.dest, &c.content, &what);
        let left: Vec<String> = listing(c.dir.path()).into_keys().collect();
        assert_eq!(left, vec!["object.bin".to_string()], "{what}");
    }
}
