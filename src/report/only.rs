//! `--only`: a display filter over verdicts and closes, like tshark's `-Y`
//! (issue 16 §4). `--only class=tls,plaintext` or `--only
//! outcome=rejected` keeps the lines and edges whose class (or outcome) is
//! one of those listed; several `--only` must all hold. It must not change
//! what is counted: the summary, the metrics and `--expect` see every flow
//! (the pipeline applies it only where lines are printed and edges kept).

use crate::verdict::{Class, Outcome};

/// What `--only` keeps; an empty list of a kind keeps every value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Only {
    pub classes: Vec<Class>,
    pub outcomes: Vec<Outcome>,
}

impl Only {
    /// Add one `--only KEY=V,...` to the filter; the error says what is
    /// allowed.
    pub fn add(&mut self, spec: &str) -> Result<(), String> {
        let (key, values) = spec
            .split_once('=')
            .ok_or_else(|| format!("--only {spec}: write class=V,... or outcome=V,..."))?;
        for v in values.split(',').map(str::trim).filter(|v| !v.is_empty()) {
            match key.trim() {
                "class" => self.classes.push(
                    Class::ALL
                        .into_iter()
                        .find(|c| c.as_str() == v)
                        .ok_or_else(|| {
                            format!(
                                "--only class={v}: {}",
                                words(&Class::ALL.map(Class::as_str))
                            )
                        })?,
                ),
                "outcome" => self.outcomes.push(
                    Outcome::ALL
                        .into_iter()
                        .find(|o| o.as_str() == v)
                        .ok_or_else(|| {
                            format!(
                                "--only outcome={v}: {}",
                                words(&Outcome::ALL.map(Outcome::as_str))
                            )
                        })?,
                ),
                k => return Err(format!("--only {k}=...: the keys are class and outcome")),
            }
        }
        Ok(())
    }

    /// Whether a flow of this class and outcome is shown.
    pub fn keeps(&self, class: Class, outcome: Outcome) -> bool {
        (self.classes.is_empty() || self.classes.contains(&class))
            && (self.outcomes.is_empty() || self.outcomes.contains(&outcome))
    }
}

fn words(all: &[&str]) -> String {
    format!("one of {}", all.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_conjunction() {
        let mut only = Only::default();
        only.add("class=tls,plaintext").unwrap();
        assert!(only.keeps(Class::Tls, Outcome::Ok));
        assert!(only.keeps(Class::Plaintext, Outcome::Rejected));
        assert!(!only.keeps(Class::Mtls, Outcome::Ok));
        only.add("outcome=rejected").unwrap();
        assert!(!only.keeps(Class::Tls, Outcome::Ok), "both must hold");
        assert!(only.keeps(Class::Tls, Outcome::Rejected));
        assert!(Only::default().keeps(Class::Unknown, Outcome::Incomplete));
        assert!(
            Only::default()
                .add("class=secure")
                .unwrap_err()
                .contains("one of plaintext, tls, mtls, unknown")
        );
        assert!(
            Only::default()
                .add("port=443")
                .unwrap_err()
                .contains("class and outcome")
        );
        assert!(Only::default().add("tls").is_err());
    }
}
