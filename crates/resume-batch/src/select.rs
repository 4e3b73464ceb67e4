//! Which listed keys a job takes: `--include` / `--exclude` globs and `--shard K/N`.

use std::fmt;

/// A shell-style pattern matched against a key's relative name (see
/// [`relative_name`](crate::path::relative_name)), as `aws s3 cp --include` does:
/// `*` any run of characters, `/` included (so `*.parquet` matches at any depth); `?` one
/// character; `[abc]`, `[a-z]`, `[!a-z]` one character of (or not of) a set; `\x` the
/// character `x` itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Any,
    One,
    Char(char),
    Set {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

impl Glob {
    /// Parses `pattern`; the error says what is wrong with it.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => {
                    while chars.peek() == Some(&'*') {
                        chars.next();
                    }
                    Token::Any
                }
                '?' => Token::One,
                '\\' => Token::Char(chars.next().ok_or_else(|| {
                    format!("pattern {pattern:?} ends with a lone \"\\\"; write \"\\\\\" for a backslash")
                })?),
                '[' => {
                    let negated = matches!(chars.peek(), Some('!' | '^'));
                    if negated {
                        chars.next();
                    }
                    let mut items = Vec::new();
                    let mut first = true;
                    loop {
                        let c = chars.next().ok_or_else(|| {
                            format!("pattern {pattern:?} has a \"[\" without its \"]\"")
                        })?;
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        if chars.peek() == Some(&'-') {
                            let mut ahead = chars.clone();
                            ahead.next();
                            if let Some(&hi) = ahead.peek()
                                && hi != ']'
                            {
                                chars.next();
                                chars.next();
                                if hi < c {
                                    return Err(format!(
                                        "pattern {pattern:?} has the range {c}-{hi}, which is \
                                         backwards; write {hi}-{c}"
                                    ));
                                }
                                items.push((c, hi));
                                continue;
                            }
                        }
                        items.push((c, c));
                    }
                    Token::Set { negated, items }
                }
                c => Token::Char(c),
            });
        }
        Ok(Self {
            text: pattern.to_owned(),
            tokens,
        })
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        let t = &self.tokens;
        // Iterative matching with one backtrack point (the last `*`): linear in practice,
        // O(pattern × name) at worst; never exponential.
        let (mut ti, mut ni) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ni < name.len() {
            let step = match t.get(ti) {
                Some(Token::Any) => {
                    star = Some((ti, ni));
                    ti += 1;
                    continue;
                }
                Some(Token::One) => true,
                Some(Token::Char(c)) => *c == name[ni],
                Some(Token::Set { negated, items }) => {
                    let c = name[ni];
                    items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                }
                None => false,
            };
            if step {
                ti += 1;
                ni += 1;
            } else if let Some((st, sn)) = star {
                ti = st + 1;
                ni = sn + 1;
                star = Some((st, sn + 1));
            } else {
                return false;
            }
        }
        t[ti..].iter().all(|x| *x == Token::Any)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

/// One of `count` disjoint parts of a listing: `--shard INDEX/COUNT` (INDEX from 0, as
/// Kubernetes' `JOB_COMPLETION_INDEX`). Key `k` belongs to shard
/// `u64::from_le_bytes(blake3(k)[..8]) % count`: stable across runs, machines, versions and
/// listing order, so `count` processes with indexes `0..count` take every key exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// `index` of `count`; `index < count`.
    pub fn new(index: u64, count: u64) -> Result<Self, String> {
        if count == 0 {
            return Err("a shard count of 0 names no shard; use INDEX/COUNT with COUNT ≥ 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard {index}/{count} does not exist: indexes run from 0 to {} (as \
                 JOB_COMPLETION_INDEX does)",
                count - 1
            ));
        }
        Ok(Self { index, count })
    }

    /// Parses `K/N`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not INDEX/COUNT (e.g. 3/16)"))?;
        let num = |x: &str| {
            x.trim()
                .parse::<u64>()
                .map_err(|_| format!("{s:?} is not INDEX/COUNT with whole numbers (e.g. 3/16)"))
        };
        Self::new(num(k)?, num(n)?)
    }

    /// The shard `key` belongs to, of `count`.
    pub fn of(key: &str, count: u64) -> u64 {
        let h = blake3::hash(key.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&h.as_bytes()[..8]);
        u64::from_le_bytes(first) % count.max(1)
    }

    pub fn contains(&self, key: &str) -> bool {
        Self::of(key, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The keys a job takes.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// A key is taken if it matches any of these (or there are none)...
    pub include: Vec<Glob>,
    /// ...and none of these.
    pub exclude: Vec<Glob>,
    pub shard: Option<Shard>,
}

impl Selection {
    /// Whether the job takes `key`, whose relative name is `rel`.
    pub fn takes(&self, key: &str, rel: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|g| g.matches(rel)))
            && !self.exclude.iter().any(|g| g.matches(rel))
            && self.shard.is_none_or(|s| s.contains(key))
    }

    /// A stable description, part of the job's identity.
    pub fn describe(&self) -> String {
        let globs = |v: &[Glob]| {
            v.iter()
                .map(|g| format!("{:?}", g.as_str()))
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "include=[{}] exclude=[{}] shard={}",
            globs(&self.include),
            globs(&self.exclude),
            self.shard.map_or_else(|| "-".to_owned(), |s| s.to_string())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).unwrap().matches(s)
    }

    #[test]
    fn globs_match_like_the_aws_cli() {
        assert!(m("*.parquet", "a.parquet"));
        assert!(m("*.parquet", "deep/dir/a.parquet"));
        assert!(!m("*.parquet", "a.parquet.tmp"));
        assert!(m("tmp/*", "tmp/x/y"));
        assert!(!m("tmp/*", "x/tmp/y"));
        assert!(m("a?c", "abc") && !m("a?c", "ac"));
        assert!(m("[a-c]x", "bx") && !m("[a-c]x", "dx"));
        assert!(m("[!a-c]x", "dx") && !m("[!a-c]x", "ax"));
        assert!(m("[]]", "]"));
        assert!(m("\\*", "*") && !m("\\*", "a"));
        assert!(m("*", "") && m("**", "a/b"));
        assert!(m("é?", "éa"));
        assert!(Glob::new("[a").is_err());
        assert!(Glob::new("a\\").is_err());
        assert!(Glob::new("[z-a]").is_err());
        // No exponential blow-up.
        let p = "*a*a*a*a*a*a*a*a*b";
        assert!(!m(p, &"a".repeat(5000)));
    }

    #[test]
    fn shards_parse_and_refuse_what_does_not_exist() {
        assert_eq!(
            Shard::parse("3/16").unwrap(),
            Shard {
                index: 3,
                count: 16
            }
        );
        assert!(Shard::parse("16/16").unwrap_err().contains("0 to 15"));
        assert!(Shard::parse("0/0").is_err());
        assert!(Shard::parse("x").is_err());
        assert!(Shard::parse("-1/4").is_err());
        // Stable: a change would reshuffle every running sharded job.
        assert_eq!(
            Shard::of("logs/2026/a.gz", 16),
            Shard::of("logs/2026/a.gz", 16)
        );
        assert_eq!(Shard::of("", 1), 0);
    }

    #[test]
    fn include_exclude_and_shard_combine() {
        let sel = Selection {
            include: vec![Glob::new("*.csv").unwrap()],
            exclude: vec![Glob::new("tmp/*").unwrap()],
            shard: None,
        };
        assert!(sel.takes("p/a.csv", "a.csv"));
        assert!(!sel.takes("p/tmp/a.csv", "tmp/a.csv"));
        assert!(!sel.takes("p/a.txt", "a.txt"));
        assert!(Selection::default().takes("k", "k"));
    }

    proptest! {
        #[test]
        fn shards_cover_every_key_exactly_once(
            keys in prop::collection::vec(".{0,40}", 1..200),
            count in 1u64..40,
        ) {
            for k in &keys {
                let owners = (0..count)
                    .filter(|&i| Shard::new(i, count).unwrap().contains(k))
                    .count();
                prop_assert_eq!(owners, 1);
            }
        }

        #[test]
        fn a_pattern_without_wildcards_matches_only_itself(s in "[a-z/.]{0,12}", t in "[a-z/.]{0,12}") {
            prop_assert_eq!(m(&s, &t), s == t);
            let (pattern, name) = (format!("*{s}"), format!("{t}{s}"));
            prop_assert!(m(&pattern, &name));
        }
    }
}
