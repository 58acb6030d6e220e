//! `minikctl events [-A] [--for TYPE/NAME] [--types Normal,Warning] [-w]`: the cluster's
//! Events, oldest first, as `kubectl events` prints them.
//!
//! An Event is an ordinary object (core/v1 `Event`) that components write when something
//! happens to another object, its `involvedObject`: the scheduler's `Scheduled`, the kubelet's
//! `Pulled`/`Started`, a controller's `SuccessfulCreate`. A repeated event is not written again
//! but counted (`count`, `lastTimestamp`; or `series` for events.k8s.io writers), which is why
//! LAST SEEN reads `2m (x5 over 10m)`. `--for` is a field selector on the involved object's
//! kind and name, the way `describe` finds an object's events by its uid.
//! [`about`] finds one object's events for `describe`, which prints them with [`interval`].
//! Read next: `describe/mod.rs`, which prints the same events below an object.

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};

use crate::printer::emit;
use crate::printer::table::{self, Grid};

use super::Ctx;

/// The arguments of `minikctl events`.
#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// Only the events about this object (`pod/web`, `deploy/hello`).
    #[arg(long = "for", value_name = "TYPE/NAME")]
    pub for_object: Option<String>,
    /// Only events of these types (`Normal`, `Warning`), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// After listing, watch for new events and print them.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Do not print the header line.
    #[arg(long = "no-headers")]
    pub no_headers: bool,
}

/// The two event types Kubernetes defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    /// `--types` values are matched without regard to case, as kubectl does.
    fn parse(s: &str) -> anyhow::Result<EventType> {
        match s.to_ascii_lowercase().as_str() {
            "normal" => Ok(EventType::Normal),
            "warning" => Ok(EventType::Warning),
            _ => anyhow::bail!("valid --types are Normal or Warning"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Runs `minikctl events`.
pub async fn run(ctx: &Ctx, args: EventsArgs) -> anyhow::Result<()> {
    let types = args
        .types
        .iter()
        .map(|t| EventType::parse(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut lp = ListParams::default();
    if let Some(target) = &args.for_object {
        lp = lp.fields(&for_selector(ctx, target).await?);
    }
    let api: Api<Event> = match ctx.list_namespace() {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let list = api.list(&lp).await?;
    let rv = list.metadata.resource_version.clone().unwrap_or_default();
    let mut events: Vec<Event> = list
        .items
        .into_iter()
        .filter(|e| wanted(e, &types))
        .collect();
    sort_oldest_first(&mut events);
    let now = Timestamp::now();
    let grid = Grid {
        headers: headers(ctx.all_namespaces),
        rows: events
            .iter()
            .map(|e| row(e, ctx.all_namespaces, now))
            .collect(),
    };
    if grid.rows.is_empty() && !args.watch {
        eprintln!("{}", none_found(ctx));
        return Ok(());
    }
    if !grid.rows.is_empty() {
        emit(&grid.render(args.no_headers))?;
    }
    if args.watch {
        let mut widths = grid.widths(!args.no_headers);
        return watch(ctx, &api, &lp, rv, &types, &mut widths).await;
    }
    Ok(())
}

/// The events about one object, found as `kubectl describe` finds them: by a field selector
/// on the involved object's name and namespace, and its kind and uid when given (a pod's
/// events are asked for without the kind). `namespace` "" searches every namespace (a Node's
/// events). A failure is no events, as kubectl's describers ignore it.
pub async fn about(
    ctx: &Ctx,
    namespace: &str,
    name: &str,
    kind: Option<&str>,
    uid: Option<&str>,
) -> Vec<Event> {
    let mut fields = Vec::new();
    if let Some(kind) = kind {
        fields.push(format!("involvedObject.kind={kind}"));
    }
    fields.push(format!("involvedObject.name={name}"));
    fields.push(format!("involvedObject.namespace={namespace}"));
    if let Some(uid) = uid.filter(|u| !u.is_empty()) {
        fields.push(format!("involvedObject.uid={uid}"));
    }
    let api: Api<Event> = if namespace.is_empty() {
        Api::all(ctx.client.clone())
    } else {
        Api::namespaced(ctx.client.clone(), namespace)
    };
    let lp = ListParams::default().fields(&fields.join(","));
    api.list(&lp).await.map(|l| l.items).unwrap_or_default()
}

/// `pod/web` → `involvedObject.kind=Pod,involvedObject.name=web`, the kind from discovery.
async fn for_selector(ctx: &Ctx, target: &str) -> anyhow::Result<String> {
    let (kind, name) = target
        .split_once('/')
        .filter(|(k, n)| !k.is_empty() && !n.is_empty())
        .with_context(|| format!("--for must be in resource/name form: {target}"))?;
    let resource = ctx.discovery().await?.resolve(kind)?;
    Ok(format!(
        "involvedObject.kind={},involvedObject.name={name}",
        resource.kind
    ))
}

fn wanted(e: &Event, types: &[EventType]) -> bool {
    types.is_empty()
        || types.iter().any(|t| {
            e.type_
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(t.name()))
        })
}

fn none_found(ctx: &Ctx) -> String {
    match ctx.list_namespace() {
        Some(ns) => format!("No events found in {ns} namespace."),
        None => "No events found.".to_string(),
    }
}

fn headers(all_namespaces: bool) -> Vec<String> {
    let mut h: Vec<String> = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
        .map(String::from)
        .into();
    if all_namespaces {
        h.insert(0, "NAMESPACE".into());
    }
    h
}

/// One line of the table: `2m (x3 over 5m)   Normal   Pulled   Pod/web   message`.
fn row(e: &Event, all_namespaces: bool, now: Timestamp) -> Vec<String> {
    let mut cells = vec![
        interval(e, now),
        e.type_.clone().unwrap_or_default(),
        e.reason.clone().unwrap_or_default(),
        format!(
            "{}/{}",
            e.involved_object.kind.as_deref().unwrap_or_default(),
            e.involved_object.name.as_deref().unwrap_or_default()
        ),
        e.message.as_deref().unwrap_or_default().trim().to_string(),
    ];
    if all_namespaces {
        cells.insert(0, e.metadata.namespace.clone().unwrap_or_default());
    }
    cells
}

/// When an event was last seen: the series' last observation, else `lastTimestamp`, else
/// `eventTime` (kubectl's `eventTime`, the sort key).
fn last_seen(e: &Event) -> Option<Timestamp> {
    if let Some(series) = &e.series {
        if let Some(t) = &series.last_observed_time {
            return Some(t.0);
        }
    }
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
}

/// When an event was first seen: `eventTime`, else `firstTimestamp`.
fn first_seen(e: &Event) -> Option<Timestamp> {
    e.event_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
}

/// Oldest first; a stable sort keeps the server's order for equal times, as Go's sort.Sort
/// on kubectl's `SortableEvents` mostly does.
pub fn sort_oldest_first(events: &mut [Event]) {
    events.sort_by_key(last_seen);
}

/// kubectl's LAST SEEN (and describe's Age): `5m`, or `2m (x3 over 5m)` for a repeated event.
pub fn interval(e: &Event, now: Timestamp) -> String {
    let first = since(first_seen(e), now);
    if let Some(series) = &e.series {
        let last = since(series.last_observed_time.as_ref().map(|t| t.0), now);
        return format!("{last} (x{} over {first})", series.count.unwrap_or(0));
    }
    match e.count {
        Some(n) if n > 1 => {
            let last = since(e.last_timestamp.as_ref().map(|t| t.0), now);
            format!("{last} (x{n} over {first})")
        }
        _ => first,
    }
}

/// kubectl's `translateTimestampSince`: `<unknown>` for no time, else a human duration.
pub fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        Some(t) => human_duration(now.as_millisecond() - t.as_millisecond()),
        None => "<unknown>".to_string(),
    }
}

/// Go's `duration.HumanDuration`: two significant units at most, coarser as time passes
/// (`45s`, `2m30s`, `10m`, `3h5m`, `10h`, `5d2h`, `30d`, `2y100d`, `9y`).
pub fn human_duration(millis: i64) -> String {
    let seconds = millis / 1000;
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86400);
    let two = |big: i64, u1: &str, small: i64, u2: &str| match small {
        0 => format!("{big}{u1}"),
        s => format!("{big}{u1}{s}{u2}"),
    };
    match () {
        _ if minutes < 10 => two(minutes, "m", seconds % 60, "s"),
        _ if minutes < 180 => format!("{minutes}m"),
        _ if hours < 8 => two(hours, "h", minutes % 60, "m"),
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 24 * 8 => two(days, "d", hours % 24, "h"),
        _ if hours < 24 * 365 * 2 => format!("{days}d"),
        _ if hours < 24 * 365 * 8 => two(days / 365, "y", days % 365, "d"),
        _ => format!("{}y", days / 365),
    }
}

/// `-w`: a line per new or changed event after the list, the watch reopened when the server
/// ends it.
async fn watch(
    ctx: &Ctx,
    api: &Api<Event>,
    lp: &ListParams,
    mut rv: String,
    types: &[EventType],
    widths: &mut Vec<usize>,
) -> anyhow::Result<()> {
    let mut wp = WatchParams::default();
    if let Some(f) = &lp.field_selector {
        wp = wp.fields(f);
    }
    loop {
        let mut stream = api.watch(&wp, &rv).await?.boxed();
        while let Some(ev) = stream.try_next().await? {
            let e = match ev {
                WatchEvent::Added(e) | WatchEvent::Modified(e) => e,
                WatchEvent::Deleted(e) => {
                    rv = e.metadata.resource_version.clone().unwrap_or(rv);
                    continue;
                }
                WatchEvent::Bookmark(b) => {
                    rv = b.metadata.resource_version;
                    continue;
                }
                WatchEvent::Error(s) => return Err(kube::Error::Api(s).into()),
            };
            rv = e.metadata.resource_version.clone().unwrap_or(rv);
            if wanted(&e, types) {
                let cells = row(&e, ctx.all_namespaces, Timestamp::now());
                table::grow(widths, &cells);
                emit(&table::line(&cells, widths))?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: serde_json::Value) -> Event {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn human_durations_match_gos() {
        let s = 1000;
        for (ms, want) in [
            (45 * s, "45s"),
            (150 * s, "2m30s"),
            (600 * s, "10m"),
            (3 * 3600 * s + 300 * s, "3h5m"),
            (10 * 3600 * s, "10h"),
            (5 * 86400 * s + 7200 * s, "5d2h"),
            (30 * 86400 * s, "30d"),
            (-5 * s, "<invalid>"),
        ] {
            assert_eq!(human_duration(ms), want);
        }
    }

    #[test]
    fn repeated_events_show_their_count() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let e = event(json!({
            "metadata": {"name": "x"}, "involvedObject": {"kind": "Pod", "name": "web"},
            "count": 3, "firstTimestamp": "2026-01-01T00:00:00Z",
            "lastTimestamp": "2026-01-01T00:08:00Z",
        }));
        assert_eq!(interval(&e, now), "2m (x3 over 10m)");
        assert_eq!(row(&e, false, now)[3], "Pod/web");
    }

    #[test]
    fn types_are_checked() {
        assert_eq!(EventType::parse("warning").unwrap(), EventType::Warning);
        assert!(EventType::parse("Error").is_err());
    }
}
