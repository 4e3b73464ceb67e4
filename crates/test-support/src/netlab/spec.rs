//! What the delay daemon does to one direction of the router's traffic: a fixed delay, jitter,
//! and loss (none, random, or Gilbert–Elliott bursts), with the daemon's seeded generator and
//! its in-order release schedule. Shared by the lab (which writes a [`Spec`] on the daemon's
//! command line) and the `netlab-delayd` binary (which parses and applies it).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Packet loss of one direction.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Loss {
    None,
    /// Each packet is dropped with this probability, independently.
    Random(f64),
    /// Two states: Good and Bad. Each packet first moves Good → Bad with probability `p`
    /// (Bad → Good with `r`), then is lost with the state's loss probability. Mean loss
    /// `p/(p+r) · loss_bad + r/(p+r) · loss_good`; mean burst length `1/r` packets when
    /// `loss_bad` is 1.
    GilbertElliott {
        p: f64,
        r: f64,
        loss_good: f64,
        loss_bad: f64,
    },
}

impl Loss {
    /// The long-run fraction of packets lost.
    pub fn mean(&self) -> f64 {
        match *self {
            Loss::None => 0.0,
            Loss::Random(q) => q,
            Loss::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
            } => {
                if p + r == 0.0 {
                    loss_good
                } else {
                    (p * loss_bad + r * loss_good) / (p + r)
                }
            }
        }
    }
}

/// One direction's impairment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    /// Every packet is held this long (plus jitter) before it goes on.
    pub delay: Duration,
    /// Added to the delay: uniform in `[-jitter, +jitter]` (never below zero); packets still
    /// leave in the order they came.
    pub jitter: Duration,
    pub loss: Loss,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: Loss::None,
        }
    }
}

/// A [`Spec`] that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad impairment spec {spec:?}: {why}; expected comma-separated delay=DUR, jitter=DUR, \
     loss=FRACTION or ge=P/R/LOSS_GOOD/LOSS_BAD (DUR in us, ms or s, e.g. delay=25ms)"
)]
pub struct SpecError {
    pub spec: String,
    pub why: String,
}

fn fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{v} is not a probability in [0, 1]"));
    }
    Ok(v)
}

fn duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .ok_or_else(|| format!("{s:?} has no unit (us, ms or s)"))?;
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number of {unit}"))?;
    match unit {
        "us" => Ok(Duration::from_micros(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        _ => Err(format!("{s:?}: unit {unit:?} is not us, ms or s")),
    }
}

impl FromStr for Spec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, SpecError> {
        let err = |why: String| SpecError {
            spec: spec.to_owned(),
            why,
        };
        let mut out = Spec::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| err(format!("{item:?} is not KEY=VALUE")))?;
            match k {
                "delay" => out.delay = duration(v).map_err(err)?,
                "jitter" => out.jitter = duration(v).map_err(err)?,
                "loss" => out.loss = Loss::Random(fraction(v).map_err(err)?),
                "ge" => {
                    let f: Vec<&str> = v.split('/').collect();
                    let [p, r, g, b] = f[..] else {
                        return Err(err(format!(
                            "ge={v} needs four values P/R/LOSS_GOOD/LOSS_BAD"
                        )));
                    };
                    out.loss = Loss::GilbertElliott {
                        p: fraction(p).map_err(err)?,
                        r: fraction(r).map_err(err)?,
                        loss_good: fraction(g).map_err(err)?,
                        loss_bad: fraction(b).map_err(err)?,
                    };
                }
                _ => return Err(err(format!("unknown key {k:?}"))),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delay={}us,jitter={}us",
            self.delay.as_micros(),
            self.jitter.as_micros()
        )?;
        match self.loss {
            Loss::None => Ok(()),
            Loss::Random(q) => write!(f, ",loss={q}"),
            Loss::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
            } => write!(f, ",ge={p}/{r}/{loss_good}/{loss_bad}"),
        }
    }
}

/// SplitMix64: the daemon's seeded generator (same seed, same drops and jitter for the same
/// packet sequence).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The state of one direction: decides each packet's fate and release time.
#[derive(Debug)]
pub struct Direction {
    spec: Spec,
    rng: Rng,
    bad: bool,
    last_release: Option<Instant>,
}

/// What happens to one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Drop,
    /// Accept it at this instant (never before an earlier packet of this direction).
    ReleaseAt(Instant),
}

impl Direction {
    pub fn new(spec: Spec, seed: u64) -> Self {
        Self {
            spec,
            rng: Rng::new(seed),
            bad: false,
            last_release: None,
        }
    }

    pub fn spec(&self) -> Spec {
        self.spec
    }

    /// Replaces the impairment; packets already held keep their release time.
    pub fn set_spec(&mut self, spec: Spec) {
        self.spec = spec;
        self.bad = false;
    }

    fn lost(&mut self) -> bool {
        match self.spec.loss {
            Loss::None => false,
            Loss::Random(q) => self.rng.unit() < q,
            Loss::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
            } => {
                let flip = if self.bad { r } else { p };
                if self.rng.unit() < flip {
                    self.bad = !self.bad;
                }
                self.rng.unit() < if self.bad { loss_bad } else { loss_good }
            }
        }
    }

    /// The fate of a packet that arrived at `now`.
    pub fn admit(&mut self, now: Instant) -> Fate {
        if self.lost() {
            return Fate::Drop;
        }
        let mut hold = self.spec.delay;
        let j = self.spec.jitter.as_nanos() as f64;
        if j > 0.0 {
            let offset = (self.rng.unit() * 2.0 - 1.0) * j;
            let nanos = (hold.as_nanos() as f64 + offset).max(0.0);
            hold = Duration::from_nanos(nanos as u64);
        }
        let mut at = now + hold;
        if let Some(last) = self.last_release {
            at = at.max(last);
        }
        self.last_release = Some(at);
        Fate::ReleaseAt(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_through_text() {
        for s in [
            Spec::default(),
            Spec {
                delay: Duration::from_millis(25),
                jitter: Duration::from_micros(1500),
                loss: Loss::Random(0.01),
            },
            Spec {
                delay: Duration::from_secs(1),
                jitter: Duration::ZERO,
                loss: Loss::GilbertElliott {
                    p: 0.005,
                    r: 0.25,
                    loss_good: 0.0,
                    loss_bad: 1.0,
                },
            },
        ] {
            assert_eq!(s.to_string().parse::<Spec>(), Ok(s), "{s}");
        }
        assert_eq!(
            "delay=25ms, loss=0.5".parse::<Spec>().map(|s| s.delay),
            Ok(Duration::from_millis(25))
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (bad, why) in [
            ("delay=25", "no unit"),
            ("delay=25h", "unit \"h\""),
            ("loss=1.5", "not a probability"),
            ("ge=0.1/0.2", "four values"),
            ("rate=1", "unknown key"),
            ("delay", "not KEY=VALUE"),
        ] {
            let e = bad.parse::<Spec>().expect_err(bad).to_string();
            assert!(e.contains(why) && e.contains("expected"), "{bad}: {e}");
        }
    }

    fn drop_rate(spec: Spec, seed: u64, n: u32) -> f64 {
        let mut d = Direction::new(spec, seed);
        let now = Instant::now();
        let lost = (0..n).filter(|_| d.admit(now) == Fate::Drop).count();
        lost as f64 / f64::from(n)
    }

    #[test]
    fn random_and_bursty_loss_match_their_means_and_are_seeded() {
        let random = Spec {
            loss: Loss::Random(0.01),
            ..Spec::default()
        };
        let r = drop_rate(random, 7, 200_000);
        assert!((0.009..0.011).contains(&r), "random loss {r}");
        assert_eq!(r, drop_rate(random, 7, 200_000), "same seed, same drops");
        let ge = Spec {
            loss: Loss::GilbertElliott {
                p: 0.002,
                r: 0.2,
                loss_good: 0.0,
                loss_bad: 1.0,
            },
            ..Spec::default()
        };
        let mean = ge.loss.mean();
        let g = drop_rate(ge, 9, 400_000);
        assert!(
            (mean * 0.8..mean * 1.2).contains(&g),
            "GE loss {g} vs {mean}"
        );
        // Bursts: the mean run of consecutive drops is about 1/r = 5 packets.
        let mut d = Direction::new(ge, 9);
        let now = Instant::now();
        let (mut runs, mut drops, mut prev) = (0u32, 0u32, false);
        for _ in 0..400_000 {
            let lost = d.admit(now) == Fate::Drop;
            if lost {
                drops += 1;
                if !prev {
                    runs += 1;
                }
            }
            prev = lost;
        }
        let burst = f64::from(drops) / f64::from(runs);
        assert!((4.0..6.0).contains(&burst), "mean burst {burst}");
    }

    #[test]
    fn packets_are_held_for_the_delay_and_leave_in_order_despite_jitter() {
        let spec = Spec {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            loss: Loss::None,
        };
        let mut d = Direction::new(spec, 3);
        let t0 = Instant::now();
        let mut last = t0;
        let mut spread = (Duration::MAX, Duration::ZERO);
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_micros(i * 100);
            let Fate::ReleaseAt(at) = d.admit(now) else {
                panic!("no loss configured")
            };
            assert!(at >= last, "packet {i} released before its predecessor");
            let held = at - now;
            assert!(
                held >= Duration::from_millis(10),
                "packet {i} held {held:?}"
            );
            spread = (spread.0.min(held), spread.1.max(held));
            last = at;
        }
        assert!(
            spread.1 - spread.0 > Duration::from_millis(5),
            "jitter {spread:?}"
        );
    }
}
