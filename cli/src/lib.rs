//! `minikctl`, the minik8s command line: kubectl's habits on a small, readable code base.
//!
//! A command line client of Kubernetes does three things over and over. It *finds out what the
//! server serves* (discovery: `/api` and `/apis` list every resource with its kind, plural,
//! short names and scope, so `po`, `pod`, `pods` and `Pod` all name `v1 pods`). It *reads
//! manifests* (multi-document YAML) and turns each object into REST calls (a POST to create, a
//! PATCH computed by a three-way merge to apply, a DELETE with a propagation policy). And it
//! *prints what the server says*, as tables the server itself renders (`as=Table`), or as
//! YAML, JSON, names or a JSONPath template. Errors are printed the way kubectl prints them,
//! one line each.
//!
//! - `cli.rs`: the command line (clap derive): global flags and the subcommands.
//! - `connect.rs`: flags → `kube::Client` (`--kubeconfig`, `--context`, `--server`, `--token`).
//! - `discovery.rs`: the resource table from aggregated discovery; names → resources.
//! - `manifest.rs`: files, directories and stdin → objects, errors naming file and line.
//! - `apply/`: the three-way strategic merge patch of client-side apply, and its schema.
//! - `printer/`: server-side tables as aligned columns; `-o yaml|json|name|jsonpath`.
//! - `commands/`: one file per subcommand (`get.rs`, `apply.rs`, `delete.rs`, ...).
//! - `error.rs`: errors as kubectl prints them (`Error from server (NotFound): ...`).
//! - `lab/`: the local lab's machinery (network namespaces, the switch, detached processes,
//!   the kubeconfig entry) that `minikctl cluster up|down|status` drive.
//!
//! Read next: `commands/mod.rs`, which builds the context every command gets, then `get.rs`.

pub mod apply;
pub mod cli;
pub mod commands;
pub mod connect;
pub mod discovery;
pub mod error;
pub mod lab;
pub mod manifest;
pub mod printer;
