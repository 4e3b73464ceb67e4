//! Exit codes, one per class of failure, so scripts can react without parsing messages.

use resume_core::ErrorKind;

pub const OK: u8 = 0;
pub const FAILURE: u8 = 1;
pub const USAGE: u8 = 2;
pub const NOT_FOUND: u8 = 3;
pub const DENIED: u8 = 4;
pub const CHANGED: u8 = 5;
pub const INTEGRITY: u8 = 6;
pub const LOCAL_IO: u8 = 7;
pub const NETWORK: u8 = 8;
/// `-r`: the job went through its whole listing, and some objects failed (listed in the
/// failures file); the others are done.
pub const PARTIAL: u8 = 9;
pub const INTERRUPTED: u8 = 130;

/// The table printed in `--help`.
pub const TABLE: &str = "\
Exit codes:
  0    downloaded and verified
  1    failure: the source refused the request for a reason retrying cannot fix (e.g. HTTP
       400 or 501; the message quotes the server), or another unexpected error
  2    usage: bad arguments, options or range
  3    not found: no such bucket, key or version
  4    access denied or bad credentials
  5    the object changed while downloading (with --on-change fail)
  6    integrity failure: the bytes did not verify against the object's checksum or a
       digest given with --checksum/--checksum-file (DEST left as it was); or
       --require-checksum and nothing to verify the file with (nothing fetched)
  7    local I/O: disk full, permissions, missing directory, DEST locked by another download
  8    network: the source kept failing and retries ran out, or answered inconsistently
       (ignored Range, refused a range inside the object)
  9    -r: some objects failed (each is named, and listed with its error in the failures
       file, JSON lines); every other object is done. Run the same command to retry them
  130  interrupted (Ctrl-C / SIGTERM); every byte received is kept for a resume (unless
       --no-checkpoint): run the same command

With -r, a listing that fails exits with its cause's code (3, 4, 8, or 1), after the objects
already listed were downloaded; the same command resumes the job.

After a failure the message ends with what is saved on disk to resume from, or says that
nothing is.";

/// The exit code for an engine error.
pub fn for_kind(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Usage => USAGE,
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::Denied => DENIED,
        ErrorKind::Changed => CHANGED,
        ErrorKind::Integrity => INTEGRITY,
        ErrorKind::LocalIo | ErrorKind::Locked => LOCAL_IO,
        ErrorKind::Network => NETWORK,
        ErrorKind::Cancelled => INTERRUPTED,
        _ => FAILURE,
    }
}
