//! minik8s scheduler: gives every pending pod a node.
//!
//! It watches Pods and Nodes through the apiserver (nothing else: it would run unchanged against
//! a real Kubernetes) and, for each pod with an empty `spec.nodeName` whose `spec.schedulerName`
//! is ours, runs kube-scheduler's cycle:
//!
//! 1. [`queue`]: pending pods wait in a queue, with back-off after failures;
//! 2. [`filter`]: nodes that cannot run the pod are ruled out, each with a reason;
//! 3. [`score`]: the remaining nodes are ranked and the best one wins;
//! 4. [`bind`]: a `Binding` is POSTed while the [`cache`] already counts the pod on the node;
//! 5. [`explain`]: a pod no node fits gets `PodScheduled=False` and a `FailedScheduling` event.
//!
//! [`schedule_one`] ties them together; start reading there. [`resources`] parses quantities.

pub mod bind;
pub mod cache;
pub mod explain;
pub mod filter;
pub mod queue;
pub mod resources;
pub mod schedule_one;
pub mod score;

pub use schedule_one::{run, SchedulerConfig};
