//! The README's table of the settings each backend reads names only variables that the
//! stores really take (`AWS_*` → `AmazonS3ConfigKey`, `GOOGLE_*` → `GoogleConfigKey`,
//! `AZURE_*` → `AzureConfigKey`, as `from_url` reads them), so the documentation cannot drift
//! from object_store's names.

use object_store::aws::AmazonS3ConfigKey;
use object_store::azure::AzureConfigKey;
use object_store::gcp::GoogleConfigKey;

/// Every `PREFIX…` word in the README (letters, digits, `_`), without wildcards (`AWS_X_*`).
fn variables(readme: &str, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = readme
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '*'))
        .filter(|w| w.starts_with(prefix) && !w.ends_with('*'))
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn every_documented_variable_is_one_the_store_reads() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("read the README");
    let aws = variables(&readme, "AWS_");
    let google = variables(&readme, "GOOGLE_");
    let azure = variables(&readme, "AZURE_");
    for (found, at_least) in [(&aws, 6), (&google, 4), (&azure, 8)] {
        assert!(
            found.len() >= at_least,
            "the README documents too few: {found:?}"
        );
    }
    for v in &aws {
        assert!(
            v.to_ascii_lowercase().parse::<AmazonS3ConfigKey>().is_ok(),
            "{v} is not an S3 setting"
        );
    }
    for v in &google {
        assert!(
            v.to_ascii_lowercase().parse::<GoogleConfigKey>().is_ok(),
            "{v} is not a GCS setting"
        );
    }
    for v in &azure {
        assert!(
            v.to_ascii_lowercase().parse::<AzureConfigKey>().is_ok(),
            "{v} is not an Azure setting"
        );
    }
    for oss in [
        "OSS_ACCESS_KEY_ID",
        "OSS_ACCESS_KEY_SECRET",
        "OSS_SESSION_TOKEN",
        "OSS_ENDPOINT",
        "OSS_REGION",
    ] {
        assert!(readme.contains(oss), "the README does not name {oss}");
    }
}
