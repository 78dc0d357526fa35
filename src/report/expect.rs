//! Verify mode (`--expect mtls|tls|encrypted`, `--strict`): the wire-level
//! counterpart of a mesh's STRICT PeerAuthentication check, for scripts and
//! CI.
//!
//! This file owns the rule that says whether one verdict meets the
//! expectation and the tally that decides the exit status. A decided flow
//! (class not `unknown`) on a tracked port *falls short* when its class is
//! below the expectation and the server went on with it; a short flow the
//! server refused (outcome `rejected`) is the policy working, so it is
//! counted as refused, not as an offender. Unknown flows are counted apart
//! and fail only with `--strict` (which also fails a run that decided no
//! flow at all: nothing was verified). It must not print or exit: the
//! caller shows `Finding`s and maps `Tally::passed` to the exit status.

use crate::capture::segment::PortSet;
use crate::verdict::{Class, Outcome, Verdict};
use crate::workload::Placement;

/// What every decided flow must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    /// A client certificate was sent (`mtls`).
    Mtls,
    /// TLS without a client certificate (`tls`), exactly.
    Tls,
    /// `tls` or `mtls`: nothing in clear.
    Encrypted,
}

impl Expectation {
    pub fn as_str(self) -> &'static str {
        match self {
            Expectation::Mtls => "mtls",
            Expectation::Tls => "tls",
            Expectation::Encrypted => "encrypted",
        }
    }

    pub fn parse(s: &str) -> Option<Expectation> {
        match s {
            "mtls" => Some(Expectation::Mtls),
            "tls" => Some(Expectation::Tls),
            "encrypted" => Some(Expectation::Encrypted),
            _ => None,
        }
    }

    fn met_by(self, class: Class) -> bool {
        match self {
            Expectation::Mtls => class == Class::Mtls,
            Expectation::Tls => class == Class::Tls,
            Expectation::Encrypted => matches!(class, Class::Tls | Class::Mtls),
        }
    }
}

/// What one verdict means for the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// Not on a tracked port: not checked.
    Untracked,
    Meets,
    /// Short, and the server went on with it: fails the check.
    Offender,
    /// Short, but the server refused it: the policy held.
    Refused,
    /// Class unknown: fails only with `--strict`.
    Unknown,
}

/// The running account of a check.
#[derive(Debug, Clone)]
pub struct Tally {
    pub expectation: Expectation,
    pub strict: bool,
    /// Server ports checked; None: every flow.
    ports: Option<PortSet>,
    pub meets: u64,
    pub offenders: u64,
    pub refused: u64,
    pub unknown: u64,
    /// `--namespace`: only flows with a pod in one of these are checked.
    namespaces: Vec<String>,
}

impl Tally {
    pub fn new(expectation: Expectation, strict: bool, ports: Option<PortSet>) -> Self {
        Tally {
            expectation,
            strict,
            ports,
            meets: 0,
            offenders: 0,
            refused: 0,
            unknown: 0,
            namespaces: Vec::new(),
        }
    }

    /// Check only flows whose client or server pod is in `namespaces`
    /// (`--namespace`, with `--k8s-pods`).
    pub fn with_namespaces(mut self, namespaces: Vec<String>) -> Self {
        self.namespaces = namespaces;
        self
    }

    /// Judge and count one verdict placed in its workloads: with
    /// `--namespace`, a flow with no pod in those namespaces is untracked.
    pub fn check_placed(&mut self, v: &Verdict, p: Option<&Placement>) -> Finding {
        if !self.namespaces.is_empty() && !p.is_some_and(|p| p.in_namespaces(&self.namespaces)) {
            return Finding::Untracked;
        }
        self.check(v)
    }

    /// Judge and count one verdict.
    pub fn check(&mut self, v: &Verdict) -> Finding {
        // --ports keeps a flow when either port matches; the check is about
        // the servers on those ports.
        // An unanswered SYN (printed with -v) is not a decided flow.
        if v.unanswered
            || self
                .ports
                .as_ref()
                .is_some_and(|p| !p.contains(v.server.port))
        {
            return Finding::Untracked;
        }
        let finding = if v.class == Class::Unknown {
            Finding::Unknown
        } else if self.expectation.met_by(v.class) {
            Finding::Meets
        } else if v.outcome == Outcome::Rejected {
            Finding::Refused
        } else {
            Finding::Offender
        };
        match finding {
            Finding::Meets => self.meets += 1,
            Finding::Offender => self.offenders += 1,
            Finding::Refused => self.refused += 1,
            Finding::Unknown => self.unknown += 1,
            Finding::Untracked => {}
        }
        finding
    }

    /// Decided flows checked (met, short, refused).
    pub fn decided(&self) -> u64 {
        self.meets + self.offenders + self.refused
    }

    /// The check passes: no offender, and with `--strict` no unknown flow
    /// and at least one decided flow.
    pub fn passed(&self) -> bool {
        self.offenders == 0 && !(self.strict && (self.unknown > 0 || self.decided() == 0))
    }

    /// The closing sentence, e.g. `expect mtls: FAIL: 2 of 9 decided flows
    /// fall short (1 refused by the server, 3 unknown)`.
    pub fn conclusion(&self) -> String {
        let verdict = if self.passed() { "OK" } else { "FAIL" };
        let mut s = format!(
            "expect {}: {verdict}: {} of {} decided flows fall short",
            self.expectation.as_str(),
            self.offenders,
            self.decided()
        );
        let mut notes = Vec::new();
        if self.refused > 0 {
            notes.push(format!("{} refused by the server", self.refused));
        }
        if self.unknown > 0 {
            notes.push(format!(
                "{} unknown{}",
                self.unknown,
                if self.strict {
                    ", failing with --strict"
                } else {
                    ", not failing without --strict"
                }
            ));
        }
        if self.strict && self.decided() == 0 {
            notes.push("no decided flow: nothing verified (--strict)".to_string());
        }
        if !notes.is_empty() {
            s.push_str(&format!(" ({})", notes.join("; ")));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::segment::{Endpoint, Timestamp};

    fn v(port: u16, class: Class, outcome: Outcome) -> Verdict {
        let ep = |p| Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port: p,
        };
        Verdict {
            class,
            outcome,
            ..Verdict::new(ep(40000), ep(port), Timestamp(0), Timestamp(0))
        }
    }

    #[test]
    fn findings_table() {
        use Class::{Mtls, Plaintext, Tls};
        use Expectation as E;
        use Finding as F;
        use Outcome::{Incomplete, Ok, Rejected};
        let table = [
            (E::Mtls, Mtls, Ok, F::Meets),
            (E::Mtls, Mtls, Rejected, F::Meets),
            (E::Mtls, Tls, Ok, F::Offender),
            (E::Mtls, Tls, Incomplete, F::Offender),
            (E::Mtls, Tls, Rejected, F::Refused),
            (E::Mtls, Plaintext, Ok, F::Offender),
            (E::Mtls, Plaintext, Rejected, F::Refused),
            (E::Mtls, Class::Unknown, Ok, F::Unknown),
            (E::Tls, Tls, Ok, F::Meets),
            (E::Tls, Mtls, Ok, F::Offender),
            (E::Encrypted, Tls, Ok, F::Meets),
            (E::Encrypted, Mtls, Ok, F::Meets),
            (E::Encrypted, Plaintext, Ok, F::Offender),
        ];
        for (want, class, outcome, finding) in table {
            let mut t = Tally::new(want, false, None);
            assert_eq!(
                t.check(&v(443, class, outcome)),
                finding,
                "{want:?} {class:?} {outcome:?}"
            );
        }
    }

    #[test]
    fn untracked_ports_are_not_checked_and_strict_fails_unknown_and_empty() {
        let ports = PortSet::new([9080, 15008]);
        let mut t = Tally::new(Expectation::Mtls, false, Some(ports.clone()));
        assert_eq!(
            t.check(&v(80, Class::Plaintext, Outcome::Ok)),
            Finding::Untracked
        );
        assert_eq!(
            t.check(&v(9080, Class::Unknown, Outcome::Ok)),
            Finding::Unknown
        );
        assert!(t.passed(), "{}", t.conclusion());
        let mut strict = Tally::new(Expectation::Mtls, true, Some(ports));
        assert!(!strict.passed(), "nothing decided fails with --strict");
        strict.check(&v(9080, Class::Mtls, Outcome::Ok));
        assert!(strict.passed());
        // An unanswered SYN (printed with -v) is not a decided flow, not
        // even an unknown one.
        let syn = Verdict {
            unanswered: true,
            ..v(9080, Class::Unknown, Outcome::Unknown)
        };
        assert_eq!(strict.check(&syn), Finding::Untracked);
        assert!(strict.passed());
        strict.check(&v(9080, Class::Unknown, Outcome::Ok));
        assert!(!strict.passed());
        assert_eq!(
            strict.conclusion(),
            "expect mtls: FAIL: 0 of 1 decided flows fall short (1 unknown, failing with --strict)"
        );
        t.check(&v(9080, Class::Tls, Outcome::Rejected));
        t.check(&v(9080, Class::Plaintext, Outcome::Ok));
        assert!(!t.passed());
        assert_eq!(
            t.conclusion(),
            "expect mtls: FAIL: 1 of 2 decided flows fall short (1 refused by the server; 1 unknown, not failing without --strict)"
        );
    }
}
