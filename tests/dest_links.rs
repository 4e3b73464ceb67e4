//! A symbolic link at DEST, end to end: the download writes *through* it, as curl and wget do.
//! The link is left as it is and its final target is replaced atomically (temp file and
//! checkpoint beside the target, so the rename stays within one directory and file system);
//! a dangling link creates its target; a loop is refused before any request.

use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;

use e2e_tests::support::*;

const KEY: &str = "links/object.bin";
const PART: u64 = 1000;

/// A 5-part object on its own server.
fn object() -> (Server, Vec<u8>) {
    let server = Server::start();
    let content = data(16, 5 * PART as usize);
    server.put(KEY, &content);
    (server, content)
}

fn get(server: &Server, dest: &Path) -> Get {
    server
        .get(KEY, dest)
        .args(["--part-size".to_string(), PART.to_string()])
}

fn names(dir: &Path) -> Vec<String> {
    listing(dir).into_keys().collect()
}

#[track_caller]
fn assert_link(link: &Path, target: &str) {
    let meta = std::fs::symlink_metadata(link).expect("the link is still there");
    assert!(
        meta.file_type().is_symlink(),
        "{} is no longer a link",
        link.display()
    );
    assert_eq!(
        std::fs::read_link(link).expect("read link"),
        Path::new(target),
        "{} points elsewhere",
        link.display()
    );
}

#[track_caller]
fn assert_destination(out: &Outcome, file: &Path) {
    let file = file.canonicalize().expect("the target exists");
    assert_eq!(
        out.completed()["destination"].as_str(),
        Some(file.to_str().expect("UTF-8 path")),
        "the completed event names the file written"
    );
}

#[test]
fn a_link_to_a_file_in_the_same_directory_is_written_through() {
    let (server, content) = object();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("v1.bin"), b"the previous download").expect("target");
    let link = dir.path().join("current.bin");
    symlink("v1.bin", &link).expect("symlink");

    let out = get(&server, &link).run();
    out.expect_ok();
    assert_link(&link, "v1.bin");
    assert_file_is(&dir.path().join("v1.bin"), &content, "the link's target");
    assert_file_is(&link, &content, "read through the link");
    assert_eq!(names(dir.path()), ["current.bin", "v1.bin"]);
    assert_destination(&out, &dir.path().join("v1.bin"));
}

#[test]
fn a_dangling_link_creates_its_target() {
    let (server, content) = object();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("releases")).expect("mkdir");
    let link = dir.path().join("latest");
    symlink("releases/v2.bin", &link).expect("symlink");

    let out = get(&server, &link).run();
    out.expect_ok();
    assert_link(&link, "releases/v2.bin");
    assert_file_is(
        &dir.path().join("releases/v2.bin"),
        &content,
        "created target",
    );
    assert_eq!(names(dir.path()), ["latest", "releases"]);
    assert_eq!(names(&dir.path().join("releases")), ["v2.bin"]);
    assert_destination(&out, &dir.path().join("releases/v2.bin"));

    // A link into a directory that does not exist: nothing to create the file in.
    let nowhere = dir.path().join("nowhere");
    symlink("missing/v3.bin", &nowhere).expect("symlink");
    server.emu.clear_logs();
    get(&server, &nowhere)
        .run()
        .expect_code(EXIT_LOCAL_IO)
        .expect_stderr(&["missing", "is a symbolic link into it", "directory exists"]);
    assert!(
        server.emu.request_log().is_empty(),
        "refused before any request"
    );
}

#[test]
fn a_relative_link_into_another_directory_keeps_progress_beside_the_target() {
    let (server, content) = object();
    let root = tempfile::tempdir().expect("tempdir");
    let (links, data_dir) = (root.path().join("links"), root.path().join("data"));
    std::fs::create_dir(&links).expect("mkdir");
    std::fs::create_dir(&data_dir).expect("mkdir");
    let target = data_dir.join("object.bin");
    std::fs::write(&target, b"old").expect("old target");
    let link = links.join("object");
    symlink("../data/object.bin", &link).expect("symlink");

    stop_after_parts(&server, KEY, &get(&server, &link), 2);
    assert_eq!(names(&links), ["object"], "nothing beside the link");
    assert_eq!(
        names(&data_dir),
        ["object.bin", "object.bin.rgcp", "object.bin.rgpart"],
        "the download lives beside its target"
    );
    assert_eq!(std::fs::read(&target).expect("target"), b"old", "untouched");
    assert_link(&link, "../data/object.bin");

    // The checkpoint belongs to the target: naming the target directly resumes it too.
    let out = get(&server, &target).run();
    out.expect_ok();
    assert_eq!(out.num("started", "parts_reused"), 2);
    assert!(out.event("checkpoint_discarded").is_none());
    assert_file_is(&target, &content, "resumed target");
    assert_link(&link, "../data/object.bin");
    assert_eq!(names(&data_dir), ["object.bin"]);
}

#[test]
fn a_link_into_another_file_system_is_replaced_atomically_there_and_resumes() {
    let fs = match Mount::tmpfs("4m") {
        Ok(m) => m,
        Err(why) => {
            assert!(!is_root(), "root but cannot mount a tmpfs: {why}");
            eprintln!("SKIPPED: cannot mount a tmpfs as non-root ({why})");
            return;
        }
    };
    let (server, content) = object();
    let dir = tempfile::tempdir().expect("tempdir");
    let target = fs.path().join("object.bin");
    std::fs::write(&target, b"old").expect("old target");
    let old_inode = std::fs::metadata(&target).expect("stat").ino();
    let link = dir.path().join("object.bin");
    symlink(&target, &link).expect("symlink");
    assert_ne!(
        std::fs::metadata(dir.path()).expect("stat").dev(),
        std::fs::metadata(fs.path()).expect("stat").dev(),
        "the link and its target are on different file systems"
    );

    stop_after_parts(&server, KEY, &get(&server, &link), 2);
    assert_eq!(names(dir.path()), ["object.bin"], "only the link");
    assert_eq!(
        names(fs.path()),
        ["object.bin", "object.bin.rgcp", "object.bin.rgpart"]
    );

    // The same command again.
    let out = get(&server, &link).run();
    out.expect_ok();
    assert_eq!(out.num("started", "parts_reused"), 2);
    assert_file_is(&target, &content, "target on the other file system");
    assert_ne!(
        std::fs::metadata(&target).expect("stat").ino(),
        old_inode,
        "replaced by a rename, not rewritten in place"
    );
    assert_link(&link, target.to_str().expect("UTF-8"));
    assert_eq!(names(fs.path()), ["object.bin"]);
    assert_destination(&out, &target);
}

#[test]
fn link_loops_are_refused_before_any_request() {
    let (server, _) = object();
    let dir = tempfile::tempdir().expect("tempdir");
    symlink("b", dir.path().join("a")).expect("symlink");
    symlink("a", dir.path().join("b")).expect("symlink");
    symlink("self", dir.path().join("self")).expect("symlink");
    for name in ["a", "self"] {
        get(&server, &dir.path().join(name))
            .run()
            .expect_code(EXIT_USAGE)
            .expect_stderr(&[
                "is a symbolic link that never reaches a file (a loop: ",
                "fix or remove the link",
            ]);
    }
    assert_eq!(
        names(dir.path()),
        ["a", "b", "self"],
        "nothing created or replaced"
    );
    assert!(server.emu.request_log().is_empty(), "no request was sent");
}
