//! Bucket-level operations: create, versioning, ACL, bucket info, ListBuckets (ListObjects is
//! `list.rs`).

use super::*;

async fn read_small_body(r: &mut Req) -> Result<Bytes, ApiError> {
    let Some(body) = r.body.take() else {
        return Ok(Bytes::new());
    };
    let limited = http_body_util::Limited::new(body, MAX_CONFIG_BODY);
    limited.collect().await.map(|c| c.to_bytes()).map_err(|_| {
        ApiError::new(
            400,
            "MalformedXML",
            "The request body is too large or incomplete.",
            "0016-00000002",
        )
    })
}

fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].trim())
}

pub(super) async fn bucket_op(
    r: &mut Req,
    shared: &Arc<Shared>,
    bucket: &str,
) -> Result<Response<ResBody>, ApiError> {
    let store = &shared.store;
    match r.method {
        Method::PUT if r.has_query("versioning") => {
            let body = read_small_body(r).await?;
            let text = String::from_utf8_lossy(&body);
            let v = match xml_text(&text, "Status") {
                Some("Enabled") => Versioning::Enabled,
                Some("Suspended") => Versioning::Suspended,
                _ => {
                    return Err(ApiError::new(
                        400,
                        "MalformedXML",
                        "Expected <VersioningConfiguration><Status>Enabled|Suspended</Status></VersioningConfiguration>.",
                        "0016-00000002",
                    ));
                }
            };
            store
                .set_versioning(bucket, v)
                .map_err(|_| ApiError::no_such_bucket(bucket))?;
            Ok(builder(200, r)
                .header("content-length", 0)
                .body(empty())
                .expect("valid"))
        }
        Method::PUT if r.has_query("acl") => {
            let public = acl_is_public(r)?;
            store
                .set_public_read(bucket, public)
                .map_err(|_| ApiError::no_such_bucket(bucket))?;
            Ok(builder(200, r)
                .header("content-length", 0)
                .body(empty())
                .expect("valid"))
        }
        Method::PUT if r.query.is_empty() => {
            let public = acl_is_public(r)?;
            let _ = read_small_body(r).await?;
            let opts = crate::store::BucketOptions {
                versioning: Versioning::Disabled,
                public_read: public,
            };
            match store.create_bucket(bucket, opts) {
                Ok(true) => Ok(builder(200, r)
                    .header("location", format!("/{bucket}"))
                    .header("content-length", 0)
                    .body(empty())
                    .expect("valid")),
                Ok(false) => Err(ApiError::new(
                    409,
                    "BucketAlreadyExists",
                    "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
                    "0015-00000104",
                )
                .with("BucketName", bucket)),
                Err(_) => Err(ApiError::new(
                    400,
                    "InvalidBucketName",
                    "The specified bucket is not valid.",
                    "0015-00000001",
                )
                .with("BucketName", bucket)),
            }
        }
        Method::HEAD => match store.bucket_info(bucket) {
            Some(_) => Ok(builder(200, r)
                .header("content-length", 0)
                .body(empty())
                .expect("valid")),
            None => Err(ApiError::no_such_bucket(bucket)),
        },
        Method::GET => {
            let Some((versioning, public, created)) = store.bucket_info(bucket) else {
                return Err(ApiError::no_such_bucket(bucket));
            };
            let acl = if public { "public-read" } else { "private" };
            if r.has_query("versioning") {
                let status = match versioning {
                    Versioning::Disabled => String::new(),
                    Versioning::Enabled => "<Status>Enabled</Status>".into(),
                    Versioning::Suspended => "<Status>Suspended</Status>".into(),
                };
                return Ok(xml_response(
                    r,
                    200,
                    format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<VersioningConfiguration>{status}</VersioningConfiguration>\n"
                    ),
                ));
            }
            if r.has_query("acl") {
                return Ok(xml_response(
                    r,
                    200,
                    format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AccessControlPolicy><Owner><ID>emulator</ID><DisplayName>emulator</DisplayName></Owner><AccessControlList><Grant>{acl}</Grant></AccessControlList></AccessControlPolicy>\n"
                    ),
                ));
            }
            if r.has_query("bucketInfo") {
                let status = match versioning {
                    Versioning::Disabled => "",
                    Versioning::Enabled => "<Versioning>Enabled</Versioning>",
                    Versioning::Suspended => "<Versioning>Suspended</Versioning>",
                };
                return Ok(xml_response(
                    r,
                    200,
                    format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<BucketInfo><Bucket><CreationDate>{}</CreationDate><ExtranetEndpoint>{host}</ExtranetEndpoint><IntranetEndpoint>{host}</IntranetEndpoint><Location>oss-cn-hangzhou</Location><StorageClass>Standard</StorageClass><Name>{}</Name><Owner><ID>emulator</ID><DisplayName>emulator</DisplayName></Owner><AccessControlList><Grant>{acl}</Grant></AccessControlList>{status}</Bucket></BucketInfo>\n",
                        iso8601(created),
                        xml_escape(bucket),
                        host = xml_escape(&host_id(r)),
                    ),
                ));
            }
            super::list::list_objects(r, shared, bucket)
        }
        Method::DELETE => {
            if !store.bucket_exists(bucket) {
                return Err(ApiError::no_such_bucket(bucket));
            }
            Err(ApiError::not_implemented("DeleteBucket"))
        }
        _ => Err(ApiError::not_implemented(&format!(
            "{} on a bucket",
            r.method
        ))),
    }
}

fn acl_is_public(r: &Req) -> Result<bool, ApiError> {
    match r.header("x-oss-acl") {
        None | Some("private") => Ok(false),
        Some("public-read") | Some("public-read-write") => Ok(true),
        Some(other) => Err(ApiError::invalid_argument(format!(
            "no such bucket access control exists: {other:?}; use private or public-read"
        ))),
    }
}

pub(super) fn list_buckets(r: &Req, shared: &Shared) -> Response<ResBody> {
    let buckets: Vec<(String, u64)> = shared
        .store
        .bucket_names()
        .into_iter()
        .filter_map(|name| {
            let created = shared.store.bucket_info(&name)?.2;
            Some((name, created))
        })
        .collect();
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListAllMyBucketsResult><Owner><ID>emulator</ID><DisplayName>emulator</DisplayName></Owner><Buckets>",
    );
    for (name, created) in buckets {
        xml.push_str(&format!(
            "<Bucket><CreationDate>{}</CreationDate><Location>oss-cn-hangzhou</Location><Name>{}</Name><Region>cn-hangzhou</Region><StorageClass>Standard</StorageClass></Bucket>",
            iso8601(created),
            xml_escape(&name)
        ));
    }
    xml.push_str("</Buckets></ListAllMyBucketsResult>\n");
    xml_response(r, 200, xml)
}
