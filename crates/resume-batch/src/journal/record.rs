//! One journal record and its body's encoding (the `body` of the format in the journal's
//! module documentation): what is written, and a decoder that refuses anything else.

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A download of `key` is about to start; `checkpointed`: it keeps its own checkpoint
    /// (so a temp file it leaves is the engine's to resume, not the job's to remove).
    Started {
        key: String,
        checkpointed: bool,
        page: u64,
    },
    /// `key` is in place: `size` bytes of version `etag`.
    Done {
        key: String,
        size: u64,
        etag: Option<String>,
        crc64: Option<u64>,
        page: u64,
    },
    /// `key` (listed on `page`) failed: its page may be settled all the same, and every
    /// rerun retries the object until it is `Done` or `Dropped`.
    Failed { key: String, page: u64 },
    /// A failed object is no longer retried: it was deleted from the source.
    Dropped { key: String },
    /// The listing has returned `objects` objects (`bytes` in all) so far; `next` continues it.
    Listed {
        objects: u64,
        bytes: u64,
        next: Option<String>,
    },
    /// Every object of pages `..=page` is settled (done, up to date, skipped or excluded):
    /// `objects` objects (`bytes` in all) were listed on them, and `next` continues the
    /// listing after them (`None`: they were the whole listing).
    Settled {
        page: u64,
        objects: u64,
        bytes: u64,
        next: Option<String>,
    },
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn put_opt_str(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => buf.push(0),
        Some(s) => {
            buf.push(1);
            put_str(buf, s);
        }
    }
}

pub(super) fn encode(r: &Record) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    match r {
        Record::Started {
            key,
            checkpointed,
            page,
        } => {
            b.push(1);
            b.push(u8::from(*checkpointed));
            put_str(&mut b, key);
            b.extend_from_slice(&page.to_le_bytes());
        }
        Record::Done {
            key,
            size,
            etag,
            crc64,
            page,
        } => {
            b.push(2);
            put_str(&mut b, key);
            b.extend_from_slice(&size.to_le_bytes());
            put_opt_str(&mut b, etag.as_deref());
            match crc64 {
                None => b.push(0),
                Some(c) => {
                    b.push(1);
                    b.extend_from_slice(&c.to_le_bytes());
                }
            }
            b.extend_from_slice(&page.to_le_bytes());
        }
        Record::Failed { key, page } => {
            b.push(5);
            put_str(&mut b, key);
            b.extend_from_slice(&page.to_le_bytes());
        }
        Record::Dropped { key } => {
            b.push(6);
            put_str(&mut b, key);
        }
        Record::Listed {
            objects,
            bytes,
            next,
        } => {
            b.push(3);
            b.extend_from_slice(&objects.to_le_bytes());
            b.extend_from_slice(&bytes.to_le_bytes());
            put_opt_str(&mut b, next.as_deref());
        }
        Record::Settled {
            page,
            objects,
            bytes,
            next,
        } => {
            b.push(4);
            b.extend_from_slice(&page.to_le_bytes());
            b.extend_from_slice(&objects.to_le_bytes());
            b.extend_from_slice(&bytes.to_le_bytes());
            put_opt_str(&mut b, next.as_deref());
        }
    }
    b
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn str(&mut self) -> Option<String> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn opt_str(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }
}

pub(super) fn decode(body: &[u8]) -> Option<Record> {
    let mut c = Cursor(body);
    let r = match c.u8()? {
        1 => {
            let flags = c.u8()?;
            Record::Started {
                checkpointed: flags & 1 == 1,
                key: c.str()?,
                page: c.u64()?,
            }
        }
        2 => Record::Done {
            key: c.str()?,
            size: c.u64()?,
            etag: c.opt_str()?,
            crc64: match c.u8()? {
                0 => None,
                1 => Some(c.u64()?),
                _ => return None,
            },
            page: c.u64()?,
        },
        3 => Record::Listed {
            objects: c.u64()?,
            bytes: c.u64()?,
            next: c.opt_str()?,
        },
        4 => Record::Settled {
            page: c.u64()?,
            objects: c.u64()?,
            bytes: c.u64()?,
            next: c.opt_str()?,
        },
        5 => Record::Failed {
            key: c.str()?,
            page: c.u64()?,
        },
        6 => Record::Dropped { key: c.str()? },
        _ => return None,
    };
    c.0.is_empty().then_some(r)
}
