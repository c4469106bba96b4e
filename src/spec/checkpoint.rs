//! `checkpoint:` — how often a built-in trial saves the state it resumes from, as the user
//! writes it: `off`, or `{every_epochs: N, every_minutes: M, keep_final: true}`.

use super::SpecError;
use super::sections::deserialize_section;
use super::yaml::{Node, NodeKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// When a trial writes its checkpoint. At the end of an epoch when either interval has passed
/// since the last one (or the start), and always when the trial is stopped (Ctrl-C, SIGTERM) at
/// the batch it stops on. Without `checkpoint:`, every minute: a trial shorter than a minute
/// writes none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointPolicy {
    /// False for `checkpoint: off`: nothing is written, and an interrupted trial starts over.
    pub enabled: bool,
    /// Every this many epochs.
    pub every_epochs: Option<usize>,
    /// At the first epoch end this many minutes after the last checkpoint.
    pub every_minutes: Option<f64>,
    /// Keep the final weights (`trials/<id>/weights.mpk`) when the trial finishes.
    pub keep_final: bool,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            enabled: true,
            every_epochs: None,
            every_minutes: Some(1.0),
            keep_final: false,
        }
    }
}

impl CheckpointPolicy {
    /// Whether a checkpoint is due at the end of an epoch, `epochs` and `seconds` after the
    /// last one (or the trial's start).
    pub fn due(&self, epochs: usize, seconds: f64) -> bool {
        self.enabled
            && (self.every_epochs.is_some_and(|n| epochs >= n)
                || self.every_minutes.is_some_and(|m| seconds >= m * 60.0))
    }
}

/// `checkpoint:` — `off` (or `false`), or a map of the policy's keys. A map that names only
/// `every_epochs` checkpoints by epochs alone.
pub(super) fn checkpoint(file: &str, node: &Node) -> Result<CheckpointPolicy, SpecError> {
    let err = |key: &str, why: String| SpecError::at(file, node.pos, key, why);
    match &node.kind {
        NodeKind::Scalar(v) if v == "off" || *v == Value::Bool(false) => {
            return Ok(CheckpointPolicy {
                enabled: false,
                ..CheckpointPolicy::default()
            });
        }
        NodeKind::Map(_) => {}
        _ => {
            return Err(err(
                "checkpoint",
                format!(
                    "expected `off` or a map with every_epochs, every_minutes, keep_final; found {}",
                    node.type_name()
                ),
            ));
        }
    }
    let json = node.to_json();
    let mut policy: CheckpointPolicy = deserialize_section(file, "checkpoint", node)?;
    if json.get("every_epochs").is_some() && json.get("every_minutes").is_none() {
        policy.every_minutes = None;
    }
    if policy.every_epochs == Some(0) {
        return Err(err(
            "checkpoint.every_epochs",
            "must be at least 1 (use `checkpoint: off` for none)".into(),
        ));
    }
    if policy
        .every_minutes
        .is_some_and(|m| !(m > 0.0 && m.is_finite()))
    {
        return Err(err(
            "checkpoint.every_minutes",
            "must be a number of minutes above 0".into(),
        ));
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Spec;

    fn parse(v: &str) -> Result<CheckpointPolicy, String> {
        Spec::parse(
            "s.yaml",
            &format!("name: t\ncheckpoint: {v}\nfixed: {{epochs: 1}}\n"),
        )
        .map(|s| s.checkpoint.unwrap())
        .map_err(|e| e.to_string())
    }

    #[test]
    fn off_epochs_minutes_and_typos() {
        assert!(!parse("off").unwrap().enabled);
        assert!(!parse("false").unwrap().enabled);
        let e = parse("{every_epochs: 2}").unwrap();
        assert_eq!((e.every_epochs, e.every_minutes), (Some(2), None));
        assert!(e.due(2, 0.0) && !e.due(1, 1e6));
        let m = parse("{every_minutes: 0.5, keep_final: true}").unwrap();
        assert!(m.keep_final && m.due(1, 30.0) && !m.due(100, 29.0));
        let d = CheckpointPolicy::default();
        assert!(d.due(1, 60.0) && !d.due(1000, 59.0));
        let typo = parse("{every_epoch: 2}").unwrap_err();
        assert!(
            typo.contains("s.yaml:2")
                && typo.contains("every_epoch")
                && typo.contains("every_epochs"),
            "{typo}"
        );
        let zero = parse("{every_epochs: 0}").unwrap_err();
        assert!(zero.contains("checkpoint.every_epochs"), "{zero}");
        let bad = parse("sometimes").unwrap_err();
        assert!(bad.contains("expected `off`"), "{bad}");
    }
}
