//! `minikctl get TYPE[,TYPE] [NAME...]`: read objects and print them.
//!
//! For the default output kubectl does not format objects itself: it asks the server for a
//! *table* (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), whose columns the server
//! chose for that resource (a pod's READY, STATUS, RESTARTS, AGE), and only aligns them. For
//! `-o yaml|json|name|jsonpath` it reads the objects, and prints a `List` when there are
//! several. `-w` keeps a watch open from the list's `resourceVersion` and prints a row per
//! change, so nothing between the list and the watch is missed.
//! Read next: `../printer/table.rs`, then `apply.rs`.

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use kube::api::{ListParams, WatchEvent, WatchParams};
use serde_json::{json, Value};

use crate::discovery::{Discovery, Resource};
use crate::printer::style;
use crate::printer::table::{self, Grid, TableOptions};
use crate::printer::{emit, format_object, name_line, OutputFormat};

use super::{Ctx, Reported};

/// The media type of a server-side table.
pub const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// `get`'s arguments.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// `TYPE[,TYPE...] [NAME...]`, or `TYPE/NAME...`.
    #[arg(required = true, value_name = "TYPE[,TYPE] [NAME]")]
    pub args: Vec<String>,
    /// Output format: wide, yaml, json, name, jsonpath=TEMPLATE.
    #[arg(short = 'o', long = "output")]
    pub output: Option<OutputFormat>,
    /// Label selector (`app=web,tier!=db`).
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Field selector (`status.phase=Running`).
    #[arg(long = "field-selector")]
    pub field_selector: Option<String>,
    /// After listing, watch for changes and print them.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Do not print the header line of tables.
    #[arg(long = "no-headers")]
    pub no_headers: bool,
}

/// One resource type and the names asked for (none: list them all).
#[derive(Debug)]
pub struct Target<'a> {
    pub resource: &'a Resource,
    pub names: Vec<String>,
}

/// `pods,deploy web` or `pod/web deploy/hello` → the resources and their names.
pub fn targets<'a>(discovery: &'a Discovery, args: &[String]) -> anyhow::Result<Vec<Target<'a>>> {
    let mut out: Vec<Target<'a>> = Vec::new();
    if args.first().is_some_and(|a| a.contains('/')) {
        for arg in args {
            let (kind, name) = arg.split_once('/').with_context(|| {
                format!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'minikctl get resource/<resource_name>' instead of 'minikctl get resource resource/<resource_name>'): {arg}")
            })?;
            let resource = discovery.resolve(kind)?;
            match out.iter_mut().find(|t| t.resource == resource) {
                Some(t) => t.names.push(name.to_string()),
                None => out.push(Target {
                    resource,
                    names: vec![name.to_string()],
                }),
            }
        }
        return Ok(out);
    }
    let names: Vec<String> = args.iter().skip(1).cloned().collect();
    for kind in args[0].split(',').filter(|k| !k.is_empty()) {
        out.push(Target {
            resource: discovery.resolve(kind)?,
            names: names.clone(),
        });
    }
    Ok(out)
}

pub async fn run(ctx: &Ctx, args: GetArgs) -> anyhow::Result<()> {
    let discovery = ctx.discovery().await?;
    let targets = targets(discovery, &args.args)?;
    if ctx.all_namespaces && targets.iter().any(|t| !t.names.is_empty()) {
        anyhow::bail!("a resource cannot be retrieved by name across all namespaces");
    }
    let format = args.output.clone().unwrap_or(OutputFormat::Table);
    if args.watch {
        let [target] = targets.as_slice() else {
            anyhow::bail!("you may only specify a single resource type when watching");
        };
        return watch(ctx, &args, target, &format).await;
    }
    let mut failed = false;
    if format.is_table() {
        failed |= print_tables(ctx, &args, &targets, &format).await?;
    } else {
        failed |= print_objects(ctx, &args, &targets, &format).await?;
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

/// The message kubectl prints on stderr when nothing matched.
pub fn no_resources_message(ctx: &Ctx, namespaced: bool) -> String {
    match ctx.list_namespace() {
        Some(ns) if namespaced => format!("No resources found in {ns} namespace."),
        _ => "No resources found".to_string(),
    }
}

fn list_params(args: &GetArgs) -> ListParams {
    let mut lp = ListParams::default();
    if let Some(l) = &args.selector {
        lp = lp.labels(l);
    }
    if let Some(f) = &args.field_selector {
        lp = lp.fields(f);
    }
    lp
}

/// A GET of `path` (with query) as JSON, or as a table.
pub async fn get_json(ctx: &Ctx, path: &str, as_table: bool) -> Result<Value, kube::Error> {
    let mut req = http::Request::get(path)
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
    if as_table {
        let accept = http::HeaderValue::from_static(TABLE_ACCEPT);
        req.headers_mut().insert(http::header::ACCEPT, accept);
    }
    ctx.client.request::<Value>(req).await
}

/// The collection URL of `target` with its query (selectors, `includeObject` for tables).
fn list_path(
    ctx: &Ctx,
    resource: &Resource,
    args: &GetArgs,
    as_table: bool,
) -> anyhow::Result<String> {
    let url = resource.url(ctx.list_namespace());
    let req = kube::core::Request::new(url).list(&list_params(args))?;
    let mut path = req.uri().to_string();
    if as_table {
        path.push_str("&includeObject=Metadata");
    }
    Ok(path)
}

fn item_path(ctx: &Ctx, resource: &Resource, name: &str, as_table: bool) -> String {
    let url = resource.url(Some(&ctx.namespace));
    let suffix = if as_table {
        "?includeObject=Metadata"
    } else {
        ""
    };
    format!("{url}/{name}{suffix}")
}

/// Print one table per resource type; returns whether some name was not found.
async fn print_tables(
    ctx: &Ctx,
    args: &GetArgs,
    targets: &[Target<'_>],
    format: &OutputFormat,
) -> anyhow::Result<bool> {
    let mut failed = false;
    let mut printed = 0;
    for target in targets {
        let opts = TableOptions {
            wide: *format == OutputFormat::Wide,
            namespace_column: ctx.all_namespaces && target.resource.namespaced,
            name_prefix: (targets.len() > 1).then(|| target.resource.qualified_kind()),
        };
        let mut grid = Grid::default();
        for table in fetch(ctx, args, target, true, &mut failed).await? {
            grid.extend(Grid::from_table(&table, &opts));
        }
        if grid.rows.is_empty() {
            continue;
        }
        if printed > 0 {
            emit("\n")?;
        }
        emit(&grid.render(args.no_headers))?;
        printed += 1;
    }
    if printed == 0 && !failed {
        let namespaced = targets.iter().any(|t| t.resource.namespaced);
        eprintln!("{}", no_resources_message(ctx, namespaced));
    }
    Ok(failed)
}

/// The responses for a target: one list, or one object (or table) per name. A name that is
/// not found is reported on stderr and sets `failed`.
async fn fetch(
    ctx: &Ctx,
    args: &GetArgs,
    target: &Target<'_>,
    as_table: bool,
    failed: &mut bool,
) -> anyhow::Result<Vec<Value>> {
    if target.names.is_empty() {
        let path = list_path(ctx, target.resource, args, as_table)?;
        return Ok(vec![get_json(ctx, &path, as_table).await?]);
    }
    let mut out = Vec::new();
    for name in &target.names {
        match get_json(
            ctx,
            &item_path(ctx, target.resource, name, as_table),
            as_table,
        )
        .await
        {
            Ok(v) => out.push(v),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                style::eprint_error(&format!("Error from server (NotFound): {}", s.message));
                *failed = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// `-o yaml|json|name|jsonpath`: the objects, a `List` unless exactly one was named.
async fn print_objects(
    ctx: &Ctx,
    args: &GetArgs,
    targets: &[Target<'_>],
    format: &OutputFormat,
) -> anyhow::Result<bool> {
    let mut failed = false;
    let mut items: Vec<(String, Value)> = Vec::new();
    for target in targets {
        for v in fetch(ctx, args, target, false, &mut failed).await? {
            for item in with_type(v, target.resource) {
                items.push((target.resource.qualified_kind(), item));
            }
        }
    }
    let single = targets.len() == 1 && targets[0].names.len() == 1;
    if *format == OutputFormat::Name {
        let names: String = items.iter().map(|(k, o)| name_line(k, o) + "\n").collect();
        emit(&names)?;
        if items.is_empty() && !failed {
            eprintln!(
                "{}",
                no_resources_message(ctx, targets.iter().any(|t| t.resource.namespaced))
            );
        }
        return Ok(failed);
    }
    if single && items.len() == 1 {
        emit(&format_object(&items[0].1, format))?;
    } else if !(single && failed) {
        let list = json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": {"resourceVersion": ""},
            "items": items.into_iter().map(|(_, o)| o).collect::<Vec<_>>(),
        });
        emit(&format_object(&list, format))?;
    }
    Ok(failed)
}

/// The objects of a response (a list's items or the object), each with its apiVersion and
/// kind (list items come without them).
fn with_type(value: Value, resource: &Resource) -> Vec<Value> {
    let mut items = match value {
        Value::Object(ref m) if m.contains_key("items") => match value["items"].clone() {
            Value::Array(items) => items,
            _ => Vec::new(),
        },
        other => vec![other],
    };
    for item in &mut items {
        item["apiVersion"] = json!(resource.api_version());
        item["kind"] = json!(resource.kind);
    }
    items
}

/// `-w`: the list, then a row per change, until interrupted. A watch the server ends (its
/// timeout) is opened again from the last resourceVersion seen, so no change is lost.
async fn watch(
    ctx: &Ctx,
    args: &GetArgs,
    target: &Target<'_>,
    format: &OutputFormat,
) -> anyhow::Result<()> {
    let opts = TableOptions {
        wide: *format == OutputFormat::Wide,
        namespace_column: ctx.all_namespaces && target.resource.namespaced,
        name_prefix: None,
    };
    let args = GetArgs {
        field_selector: watch_fields(args, target),
        args: Vec::new(),
        output: None,
        selector: args.selector.clone(),
        ..*args
    };
    let list = get_json(ctx, &list_path(ctx, target.resource, &args, true)?, true).await?;
    let grid = Grid::from_table(&list, &opts);
    let mut widths = grid.widths(!args.no_headers);
    if grid.rows.is_empty() {
        eprintln!("{}", no_resources_message(ctx, target.resource.namespaced));
    } else {
        emit(&grid.render(args.no_headers))?;
    }
    let mut rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    loop {
        let req = watch_request(ctx, &args, target.resource, &rv)?;
        let mut events = ctx.client.request_events::<Value>(req).await?.boxed();
        while let Some(event) = events.try_next().await? {
            let table = match event {
                WatchEvent::Added(t) | WatchEvent::Modified(t) | WatchEvent::Deleted(t) => t,
                WatchEvent::Bookmark(_) => continue,
                WatchEvent::Error(e) => return Err(kube::Error::Api(e).into()),
            };
            if let Some(v) = table["rows"][0]["object"]["metadata"]["resourceVersion"].as_str() {
                rv = v.to_string();
            }
            for row in Grid::from_table(&table, &opts).rows {
                table::grow(&mut widths, &row);
                emit(&table::line(&row, &widths))?;
            }
        }
    }
}

/// Watching one name is watching the collection with `metadata.name=NAME`.
fn watch_fields(args: &GetArgs, target: &Target<'_>) -> Option<String> {
    match target.names.as_slice() {
        [name] => Some(format!("metadata.name={name}")),
        _ => args.field_selector.clone(),
    }
}

/// The watch of `resource` from `rv`, its events carrying table rows.
fn watch_request(
    ctx: &Ctx,
    args: &GetArgs,
    resource: &Resource,
    rv: &str,
) -> anyhow::Result<http::Request<Vec<u8>>> {
    let mut wp = WatchParams::default();
    if let Some(l) = &args.selector {
        wp = wp.labels(l);
    }
    if let Some(f) = &args.field_selector {
        wp = wp.fields(f);
    }
    let url = resource.url(ctx.list_namespace());
    let mut req = kube::core::Request::new(url).watch(&wp, rv)?;
    let uri = format!("{}&includeObject=Metadata", req.uri());
    *req.uri_mut() = uri.parse()?;
    let accept = http::HeaderValue::from_static(TABLE_ACCEPT);
    req.headers_mut().insert(http::header::ACCEPT, accept);
    Ok(req)
}
