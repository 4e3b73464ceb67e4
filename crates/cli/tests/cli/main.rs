//! Process-level tests of the `resume-get` binary against the in-process OSS emulator
//! (strict V4/V1 signatures, seeded fault injection).

mod checksums;
mod common;
mod endpoint;
mod exit_codes;
mod files_from_http;
mod gcs;
mod http_sources;
mod json;
mod layout;
mod long_names;
mod lowest_speed;
mod newcomer;
mod object_store_sources;
mod output;
mod rate_limit;
mod recursive;
mod recursive_scale;
mod region;
mod resume;
mod s3_checksums;
mod stub;
mod success;
mod tuning;
mod verbose;
mod web_servers;
mod wild_sources;
