//! Issue 14's remaining real servers, through the binary: a Node static server with weak ETags
//! (npm `http-server`), presigned S3 URLs from moto (boto3 `generate_presigned_url`) and an
//! Azurite blob SAS URL (Microsoft's Python SDK `generate_blob_sas`). Each downloads
//! byte-identical, resumes after `kill -9`, and no signature (or credential) appears in any
//! output or file. With Azurite also `az://` (issue 13): the blob's `Content-MD5` verifies the
//! download, and its properties HEAD is in the `-v` request log; a batch's one-part blob is
//! one GET verified by the `Content-MD5` that answer carries.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use test_support::{ChildGuard, free_port, npm_bin, python_with, wait_for_port};

use crate::common::{
    Outcome, Running, assert_file, assert_one_request_each, bare_cmd, data, listing, names, run,
};

const HTTP_SERVER: &str = "http-server@14.1.1";
const MOTO: &str = "moto[server]==5.2.5";
const AZURITE: &str = "azurite@3.35.0";
const AZURE_BLOB_SDK: &str = "azure-storage-blob==12.26.0";
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's published development key (not a secret, but never printed either).
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const SIZE: usize = 600_000;

/// A query parameter's value in `url`.
fn param(url: &str, name: &str) -> String {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    query
        .split('&')
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{url} has no {name}"))
        .to_owned()
}

/// Panics if any secret (raw or percent-decoded) is in the output or any file under `dir`.
fn assert_no_secrets(secrets: &[String], out: &Outcome, dir: &Path) {
    let mut texts = vec![
        ("stdout".to_owned(), out.stdout.clone()),
        ("stderr".to_owned(), out.stderr.clone()),
    ];
    for name in listing(dir) {
        let bytes = std::fs::read(dir.join(&name)).unwrap_or_default();
        texts.push((name, String::from_utf8_lossy(&bytes).into_owned()));
    }
    for secret in secrets {
        let decoded = secret
            .replace("%2B", "+")
            .replace("%2F", "/")
            .replace("%3D", "=");
        for (what, text) in &texts {
            assert!(
                !text.contains(secret.as_str()) && !text.contains(&decoded),
                "{}: a secret is in {what}:\n{text}",
                out.what
            );
        }
    }
}

/// A fresh download, then one killed with SIGKILL after two parts and resumed by the same
/// command: both byte-identical, the resume reusing the parts, no secret anywhere.
fn fresh_and_killed_then_resumed(url: &str, bytes: &[u8], secrets: &[String], what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("fresh.bin");
    let out = run(
        bare_cmd()
            .args(["--json", "--part-size", "64KiB"])
            .arg(url)
            .arg(&dest),
        &format!("{what}: fresh"),
    );
    out.expect_code(0);
    assert_file(&dest, bytes, what);
    assert_eq!(out.event("completed")["parts"], SIZE.div_ceil(64 << 10));
    assert_no_secrets(secrets, &out, dir.path());

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("killed.bin");
    let cmd = |extra: &[&str]| {
        let mut cmd = bare_cmd();
        cmd.args(["--json", "--part-size", "64KiB", "-v"])
            .args(extra)
            .arg(url)
            .arg(&dest);
        cmd
    };
    let first = Running::spawn(
        &mut cmd(&["--jobs", "1", "--limit-rate", "128KiB"]),
        &format!("{what}: to be killed"),
    )
    .kill_after_parts(2);
    assert_eq!(first.code, None, "{what}: killed by the signal");
    assert_eq!(
        listing(dir.path()),
        names(&["killed.bin.rgcp", "killed.bin.rgpart"]),
        "{what}"
    );
    assert_no_secrets(secrets, &first, dir.path());
    let out = run(&mut cmd(&[]), &format!("{what}: resumed"));
    out.expect_code(0);
    assert_file(&dest, bytes, what);
    let done = out.event("completed");
    assert!(
        done["parts_reused"].as_u64().unwrap() >= 2,
        "{what}: {done}"
    );
    assert_eq!(listing(dir.path()), names(&["killed.bin"]), "{what}");
    assert_no_secrets(secrets, &out, dir.path());
}

/// The `ETag` a `HEAD` of `http://addr/path` answers with.
fn head_etag(addr: SocketAddr, path: &str) -> String {
    let mut conn = TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "HEAD {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    answer
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("etag").then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no ETag:\n{answer}"))
}

fn serve(cmd: &mut Command, port: u16, name: &str) -> (SocketAddr, ChildGuard) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let guard = ChildGuard::spawn(cmd, name);
    wait_for_port(addr, Duration::from_secs(60), name);
    (addr, guard)
}

#[test]
fn a_node_static_server_with_weak_etags_downloads_and_resumes_after_a_kill() {
    let root = tempfile::tempdir().unwrap();
    let bytes = data(SIZE, 601);
    std::fs::write(root.path().join("f.bin"), &bytes).unwrap();
    let bin = npm_bin(HTTP_SERVER, "http-server");
    let port = free_port();
    let (addr, _server) = serve(
        Command::new(bin).arg(root.path()).args([
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-s",
            "-c-1",
        ]),
        port,
        "http-server",
    );
    // The server's validator is weak: never sent in If-Match (which would always fail).
    let etag = head_etag(addr, "/f.bin");
    assert!(etag.starts_with("W/\""), "{etag}");
    fresh_and_killed_then_resumed(&format!("http://{addr}/f.bin"), &bytes, &[], "http-server");
}

const PRESIGN: &str = r#"
import sys, boto3
from botocore.config import Config
endpoint, path = sys.argv[1:3]
def client(version):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="AKIAPRESIGNTEST0001",
                        aws_secret_access_key="presign-secret-d41c9a",
                        config=Config(signature_version=version))
s3 = client("s3v4")
s3.create_bucket(Bucket="shared")
s3.put_object(Bucket="shared", Key="big file.bin", Body=open(path, "rb").read())
# SigV4 (X-Amz-*), and the legacy SigV2 query form (Signature, Expires) boto3 still makes.
for version in ["s3v4", "s3"]:
    print(client(version).generate_presigned_url(
        "get_object", Params={"Bucket": "shared", "Key": "big file.bin"}, ExpiresIn=3600))
"#;

#[test]
fn a_moto_presigned_s3_url_downloads_and_resumes_after_a_kill_without_printing_it() {
    let python = python_with(&[MOTO]);
    let port = free_port();
    let (addr, _moto) = serve(
        Command::new(&python).args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ]),
        port,
        "moto_server",
    );
    let bytes = data(SIZE, 602);
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    std::fs::write(&body, &bytes).unwrap();
    let out = Command::new(&python)
        .arg("-c")
        .arg(PRESIGN)
        .arg(format!("http://{addr}"))
        .arg(&body)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let urls = String::from_utf8(out.stdout).unwrap();
    let urls: Vec<&str> = urls.lines().collect();
    assert_eq!(urls.len(), 2, "{urls:?}");
    let v4 = urls[0];
    assert!(v4.contains("X-Amz-Signature="), "{v4}");
    let secrets = [
        param(v4, "X-Amz-Signature"),
        param(v4, "X-Amz-Credential"),
        "presign-secret-d41c9a".to_owned(),
    ];
    fresh_and_killed_then_resumed(v4, &bytes, &secrets, "moto presigned V4");
    let v2 = urls[1];
    let secrets = [param(v2, "Signature"), "presign-secret-d41c9a".to_owned()];
    fresh_and_killed_then_resumed(v2, &bytes, &secrets, "moto presigned V2");
}

const AZURE: &str = r#"
import sys, datetime
from azure.storage.blob import BlobServiceClient, BlobSasPermissions, generate_blob_sas
endpoint, account, key, path = sys.argv[1:5]
conn = ("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;"
        % (account, key, endpoint))
service = BlobServiceClient.from_connection_string(conn)
container = service.create_container("shared")
container.upload_blob("dir/blob.bin", open(path, "rb").read())
sas = generate_blob_sas(account, "shared", "dir/blob.bin", account_key=key,
                        permission=BlobSasPermissions(read=True),
                        expiry=datetime.datetime.now(datetime.timezone.utc)
                        + datetime.timedelta(hours=1))
print("%s/shared/dir/blob.bin?%s" % (endpoint, sas))
"#;

#[test]
fn an_azurite_sas_url_downloads_and_resumes_after_a_kill_and_az_logs_its_md5_head() {
    let (addr, _azurite) = start_azurite();
    let endpoint = format!("http://{addr}/{AZURITE_ACCOUNT}");
    let bytes = data(SIZE, 603);
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    std::fs::write(&body, &bytes).unwrap();
    let out = Command::new(python_with(&[AZURE_BLOB_SDK]))
        .arg("-c")
        .arg(AZURE)
        .args([&endpoint, AZURITE_ACCOUNT, AZURITE_KEY])
        .arg(&body)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let secrets = [param(&url, "sig"), AZURITE_KEY.to_owned()];
    fresh_and_killed_then_resumed(&url, &bytes, &secrets, "Azurite SAS");

    // The same blob as az://: verified by its Content-MD5, read by a properties HEAD that is
    // in the request log like object_store's own HEAD, the shared key never printed.
    let dest = dir.path().join("az.bin");
    let out = run(
        bare_cmd()
            .env("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
            .env("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)
            .args(["--json", "-vv", "--endpoint", &endpoint])
            .arg("az://shared/dir/blob.bin")
            .arg(&dest),
        "az:// -vv",
    );
    out.expect_code(0);
    assert_file(&dest, &bytes, "az://");
    assert_eq!(
        out.event("completed")["verification"],
        "verified: MD5 full-object (Azure)"
    );
    let blob = format!("{endpoint}/shared/dir/blob.bin");
    let heads = out
        .stderr
        .lines()
        .filter(|l| {
            l.contains("resume_get::request:")
                && l.contains(" INFO ")
                && l.contains(&format!("HEAD {blob} 200"))
        })
        .count();
    assert_eq!(
        heads, 2,
        "object_store's HEAD and the properties HEAD:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("> authorization: <redacted>"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(AZURITE_KEY), "{}", out.stderr);
}

/// Azurite's blob service on a free loopback port, in memory.
fn start_azurite() -> (SocketAddr, ChildGuard) {
    let bin = npm_bin(AZURITE, "azurite-blob");
    let port = free_port();
    serve(
        Command::new(bin).args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--silent",
        ]),
        port,
        "azurite-blob",
    )
}

const AZURE_MANY: &str = r#"
import os, sys
from azure.storage.blob import BlobServiceClient
endpoint, account, key, folder = sys.argv[1:5]
conn = ("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;"
        % (account, key, endpoint))
container = BlobServiceClient.from_connection_string(conn).create_container("batch")
for name in sorted(os.listdir(folder)):
    container.upload_blob("p/" + name, open(os.path.join(folder, name), "rb").read())
"#;

/// `-r az://`: a listed blob of one part is one GET (no properties HEAD), verified by the
/// `Content-MD5` Azure sends with the whole blob, so a byte flipped on the way fails that
/// blob as an integrity error (exit 9) naming MD5, the file already there untouched, and the
/// other blobs are done. Before, nothing verified a batch's one-part blob (exit 0).
#[test]
fn an_az_prefix_costs_one_get_per_one_part_blob_and_a_flipped_byte_fails_it() {
    use std::sync::{Arc, Mutex};
    use test_support::relay::{Action, Relay};
    const PRECIOUS: &[u8] = b"an older copy the user keeps";
    let (addr, _azurite) = start_azurite();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("blobs");
    std::fs::create_dir(&folder).unwrap();
    let blobs: Vec<(String, Vec<u8>)> = (0..4u64)
        .map(|i| (format!("b{i}.bin"), data(7_000 + 333 * i as usize, 900 + i)))
        .collect();
    for (name, bytes) in &blobs {
        std::fs::write(folder.join(name), bytes).unwrap();
    }
    let out = Command::new(python_with(&[AZURE_BLOB_SDK]))
        .arg("-c")
        .arg(AZURE_MANY)
        .args([
            &format!("http://{addr}/{AZURITE_ACCOUNT}"),
            AZURITE_ACCOUNT,
            AZURITE_KEY,
        ])
        .arg(&folder)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let relay = Relay::start(addr, move |head| {
        let line = head
            .lowercase()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        log.lock().unwrap().push(line.clone());
        if line.starts_with("get ") && line.contains("/batch/p/b2.bin") {
            Action::FlipBodyByte(100)
        } else {
            Action::Forward
        }
    });
    let dest = dir.path().join("out");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("b2.bin"), PRECIOUS).unwrap();
    let out = run(
        bare_cmd()
            .env("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
            .env("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)
            .args(["--json", "--endpoint"])
            .arg(format!("{}/{AZURITE_ACCOUNT}", relay.url()))
            .args(["-r", "az://batch/p/"])
            .arg(&dest),
        "az:// prefix through a byte-flipping relay",
    );
    out.expect_code(9);
    assert_one_request_each(
        &dest,
        &blobs,
        ("b2.bin", PRECIOUS),
        &seen.lock().unwrap(),
        |name| format!("/batch/p/{name}"),
        |line| line.starts_with("get "),
        "az prefix",
    );
    // Each blob done says what verified it.
    let done: Vec<_> = out
        .events()
        .into_iter()
        .filter(|e| e["event"] == "object_done")
        .collect();
    assert_eq!(done.len(), blobs.len() - 1, "{}", out.stdout);
    for e in &done {
        assert_eq!(e["verified"], true, "{e}");
        assert_eq!(
            e["verification"], "verified: MD5 full-object (Azure)",
            "{e}"
        );
    }
    let failed = out.event("object_failed");
    assert_eq!(failed["key"], "p/b2.bin", "{failed}");
    assert_eq!(failed["kind"], "Integrity", "{failed}");
    let error = failed["error"].as_str().unwrap();
    let b2 = &blobs[2].1;
    let mut flipped = b2.clone();
    flipped[100] ^= 0x01;
    let hex = |v: &[u8]| {
        use md5::Digest as _;
        md5::Md5::digest(v)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    for needle in ["MD5", &hex(b2), &hex(&flipped)] {
        assert!(error.contains(needle), "{needle} in {error}");
    }
}
