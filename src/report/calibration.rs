//! `--calibrate`: for every TLS 1.3 flow a key log decrypted, what the size
//! rule (`classify::FINISHED_RECORD_MAX` / `CERTIFICATE_RECORD_MIN`,
//! wire-facts §2) said against what decryption proved; a confusion matrix,
//! the client flight sizes seen per proven class, and every flow where the
//! two disagree, with the decrypted verdict's reason.
//!
//! This file owns that tally and its text. It must not look at packets or
//! decide anything: it reads printed verdicts (basis `decrypted` with an
//! `inferred` class) in the output stage, so it sees every flow once, in
//! output order. Bounded: at most `SIZES_MAX` distinct sizes per class and
//! `DISAGREEMENTS_MAX` listed flows; the rest is counted.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::verdict::{Basis, Class, Verdict};

const CLASSES: [Class; 3] = [Class::Tls, Class::Mtls, Class::Unknown];
const SIZES_MAX: usize = 64;
const DISAGREEMENTS_MAX: usize = 32;

fn index(c: Class) -> Option<usize> {
    CLASSES.iter().position(|&x| x == c)
}

/// The tally.
#[derive(Debug, Default)]
pub struct Calibration {
    /// [inferred][decrypted], indexed like CLASSES.
    matrix: [[u64; 3]; 3],
    /// Per decrypted class: (first client record length, flight bytes) -> flows.
    sizes: [BTreeMap<(u16, u32), u64>; 3],
    sizes_not_listed: u64,
    /// Flows where the size rule named the other class.
    wrong: u64,
    /// Flows where the size rule said unknown and decryption decided.
    abstained: u64,
    listed: Vec<String>,
}

impl Calibration {
    /// Count one printed verdict (only TLS 1.3 flows decrypted with a key
    /// log count).
    pub fn record(&mut self, v: &Verdict) {
        let Some(inferred) = v.inferred.filter(|_| v.basis == Basis::Decrypted) else {
            return;
        };
        let (Some(i), Some(d)) = (index(inferred), index(v.class)) else {
            return;
        };
        if let Some(cell) = self.matrix.get_mut(i).and_then(|r| r.get_mut(d)) {
            *cell += 1;
        }
        let flight = v
            .flight
            .as_ref()
            .map(|f| (f.records.first().copied().unwrap_or(0), f.bytes));
        if let (Some(key), Some(sizes)) = (flight, self.sizes.get_mut(d)) {
            if sizes.len() < SIZES_MAX || sizes.contains_key(&key) {
                *sizes.entry(key).or_default() += 1;
            } else {
                self.sizes_not_listed += 1;
            }
        }
        if inferred == v.class {
            return;
        }
        if inferred == Class::Unknown {
            self.abstained += 1;
        } else {
            self.wrong += 1;
        }
        if self.listed.len() < DISAGREEMENTS_MAX {
            let flight = v.flight.as_ref().map_or("no flight".to_string(), |f| {
                let recs: Vec<String> = f.records.iter().map(u16::to_string).collect();
                format!("flight {} B [{}]", f.bytes, recs.join(","))
            });
            self.listed.push(format!(
                "{} > {}: size rule {}, decrypted {}, {flight}: {}",
                v.client,
                v.server,
                inferred.as_str(),
                v.class.as_str(),
                v.reason
            ));
        }
    }

    /// Flows decrypted.
    pub fn flows(&self) -> u64 {
        self.matrix.iter().flatten().sum()
    }

    /// The report: lines starting `mtlsniff: calibration:`.
    pub fn render(&self) -> String {
        let p = "mtlsniff: calibration:";
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{p} {} TLS 1.3 handshake(s) decrypted; rows: the size rule (inferred), columns: decrypted",
            self.flows()
        );
        let _ = writeln!(
            s,
            "{p}   {:<10} {:>8} {:>8} {:>8}",
            "", "tls", "mtls", "unknown"
        );
        for (c, row) in CLASSES.iter().zip(&self.matrix) {
            let [a, b, d] = row;
            let _ = writeln!(s, "{p}   {:<10} {a:>8} {b:>8} {d:>8}", c.as_str());
        }
        for (c, sizes) in CLASSES.iter().zip(&self.sizes) {
            if sizes.is_empty() {
                continue;
            }
            let list: Vec<String> = sizes
                .iter()
                .map(|((first, bytes), n)| format!("{first}/{bytes} x{n}"))
                .collect();
            let _ = writeln!(
                s,
                "{p} client flights proven {} (first record B / flight B x flows): {}",
                c.as_str(),
                list.join(", ")
            );
        }
        if self.sizes_not_listed > 0 {
            let _ = writeln!(s, "{p} {} more flights not listed", self.sizes_not_listed);
        }
        let _ = writeln!(
            s,
            "{p} disagreements: {} wrong (the size rule named the other class), {} abstained (the size rule said unknown)",
            self.wrong, self.abstained
        );
        for line in &self.listed {
            let _ = writeln!(s, "{p}   {line}");
        }
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::capture::segment::{Endpoint, Timestamp};
    use crate::verdict::Flight;

    fn v(inferred: Option<Class>, class: Class, first: u16) -> Verdict {
        let ep = |p| Endpoint {
            ip: "127.0.0.1".parse().unwrap(),
            port: p,
        };
        let mut v = Verdict::new(ep(40000), ep(443), Timestamp(0), Timestamp(0));
        v.class = class;
        v.basis = Basis::Decrypted;
        v.inferred = inferred;
        v.flight = Some(Flight {
            records: vec![first, 74],
            bytes: u32::from(first) + 5 + 79,
        });
        v.reason = "why".into();
        v
    }

    #[test]
    fn matrix_sizes_and_disagreements() {
        let mut c = Calibration::default();
        c.record(&v(Some(Class::Mtls), Class::Mtls, 968));
        c.record(&v(Some(Class::Tls), Class::Tls, 25));
        c.record(&v(Some(Class::Tls), Class::Tls, 25));
        c.record(&v(Some(Class::Unknown), Class::Mtls, 200));
        c.record(&v(Some(Class::Tls), Class::Mtls, 90));
        c.record(&v(None, Class::Mtls, 968)); // not decrypted: not counted
        let mut observed = v(Some(Class::Tls), Class::Tls, 25);
        observed.basis = Basis::Observed;
        c.record(&observed);
        assert_eq!(c.flows(), 5);
        let r = c.render();
        assert!(r.contains("5 TLS 1.3 handshake(s) decrypted"), "{r}");
        assert!(r.contains("  tls               2        1        0"), "{r}");
        assert!(
            r.contains("proven tls (first record B / flight B x flows): 25/109 x2"),
            "{r}"
        );
        assert!(r.contains("1 wrong"), "{r}");
        assert!(r.contains("1 abstained"), "{r}");
        assert!(
            r.contains("size rule tls, decrypted mtls, flight 174 B [90,74]: why"),
            "{r}"
        );
        assert!(r.lines().all(|l| l.starts_with("mtlsniff: calibration:")));
    }
}
