//! Selectors: how a list or watch asks for a subset of objects. A label selector
//! (`?labelSelector=app=web,tier in (fe,be),!canary`) filters on `metadata.labels`; a field
//! selector (`?fieldSelector=spec.nodeName=n1`) filters on a few indexed fields that each
//! resource declares (the kubelet watches its pods this way). Read `labels.rs` for the label
//! grammar and `fields.rs` for the per-resource field table.

mod fields;
mod labels;

pub use fields::FieldSelector;
pub use labels::{LabelSelector, Operator, Requirement};

/// Why a selector was refused. The apiserver answers all of these as 400 BadRequest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The label selector string does not parse or a key/value is invalid; the message is the
    /// one `labels.Parse` gives (e.g. `unable to parse requirement: ...`).
    #[error("{0}")]
    ParseLabelSelector(String),
    /// A `matchExpressions` operator other than In, NotIn, Exists, DoesNotExist.
    #[error("{operator:?} is not a valid label selector operator")]
    InvalidLabelSelectorOperator {
        /// The operator given.
        operator: String,
    },
    /// The field selector string does not parse (no operator, bad escape).
    #[error("{0}")]
    ParseFieldSelector(String),
    /// The resource does not index this field.
    #[error("field label not supported: {field}")]
    FieldLabelNotSupported {
        /// The field given, e.g. `spec.foo`.
        field: String,
    },
}
