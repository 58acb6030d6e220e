//! The image commands that read an image back, as Docker's: `image inspect` (the config, the
//! layers' diff ids, the size), `history` (one line per step that made the image, newest
//! first) and `tag` (one more name for the same manifest). An image is its config blob: its
//! `Id` is the config's digest, so two names of one manifest have one `Id`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use runtime::image::Image;
use runtime::Runtime;
use serde_json::{json, Value};

/// The raw config document of an image (the typed one drops fields Docker shows).
fn raw_config(rt: &Runtime, image: &Image) -> Result<Value> {
    let bytes = rt.images.read_blob(&image.config_digest)?;
    serde_json::from_slice(&bytes).with_context(|| format!("parse config of {}", image.name))
}

/// `image inspect NAME...`: a JSON array, one object per image, with Docker's field names.
pub fn cmd_image_inspect(rt: &Runtime, names: &[String]) -> Result<i32> {
    let mut out = Vec::new();
    for name in names {
        let image = rt.images.resolve(name)?;
        out.push(inspect_json(rt, &image)?);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

fn inspect_json(rt: &Runtime, image: &Image) -> Result<Value> {
    let config = raw_config(rt, image)?;
    let repo_tags: Vec<String> = rt
        .images
        .list()?
        .into_iter()
        .filter(|r| r.manifest == image.manifest_digest)
        .map(|r| r.name)
        .collect();
    let c = &config["config"];
    let size: u64 = image.manifest.layers().iter().map(|l| l.size()).sum();
    Ok(json!({
        "Id": image.config_digest,
        "RepoTags": repo_tags,
        "Manifest": image.manifest_digest,
        "Created": config["created"],
        "Config": {
            "Cmd": c["Cmd"],
            "Entrypoint": c["Entrypoint"],
            "Env": c["Env"],
            "WorkingDir": c.get("WorkingDir").cloned().unwrap_or(json!("")),
            "User": c.get("User").cloned().unwrap_or(json!("")),
        },
        "Architecture": config["architecture"],
        "Os": config["os"],
        "Size": size,
        "RootFS": {
            "Type": "layers",
            "Layers": config["rootfs"]["diff_ids"],
        },
    }))
}

/// `tag SOURCE TARGET`: TARGET names SOURCE's manifest too.
pub fn cmd_tag(rt: &Runtime, source: &str, target: &str) -> Result<i32> {
    let image = rt.images.resolve(source)?;
    rt.images.tag(target, &image.manifest_digest)?;
    Ok(0)
}

/// `history NAME`: the config's history, newest first, as `docker history` prints it: the
/// image id on the newest line (`<missing>` below: those steps have no image of their own
/// here), when, the command that made it and the size of the layer it added (`0B` for the
/// steps that changed only the config).
pub fn cmd_history(rt: &Runtime, name: &str, human: bool, no_trunc: bool) -> Result<i32> {
    let image = rt.images.resolve(name)?;
    let config = raw_config(rt, &image)?;
    let mut sizes = image.manifest.layers().iter().map(|l| l.size());
    let entries = config["history"].as_array().cloned().unwrap_or_default();
    let now = SystemTime::now();
    let mut rows: Vec<[String; 5]> = entries
        .iter()
        .map(|h| {
            let empty = h["empty_layer"].as_bool().unwrap_or(false);
            let size = if empty { 0 } else { sizes.next().unwrap_or(0) };
            let created = h["created"].as_str().unwrap_or("");
            let created = match (human, parse_rfc3339(created)) {
                (_, None) => "N/A".to_string(),
                (true, Some(t)) => format!("{} ago", human_duration(since(now, t))),
                (false, Some(_)) => created.to_string(),
            };
            let by = h["created_by"].as_str().unwrap_or("").replace('\t', " ");
            let by = if no_trunc { by } else { ellipsis(&by, 45) };
            let comment = h["comment"].as_str().unwrap_or("").to_string();
            [String::new(), created, by, human_size(size), comment]
        })
        .collect();
    rows.reverse();
    for (i, row) in rows.iter_mut().enumerate() {
        let hex = image.config_digest.trim_start_matches("sha256:");
        row[0] = match (i, no_trunc) {
            (0, true) => image.config_digest.clone(),
            (0, false) => hex[..12].to_string(),
            _ => "<missing>".into(),
        };
    }
    let header = ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"].map(String::from);
    print!("{}", table(std::iter::once(header).chain(rows)));
    Ok(0)
}

fn since(now: SystemTime, t: SystemTime) -> Duration {
    now.duration_since(t).unwrap_or_default()
}

/// Rows padded into columns three spaces apart, as Go's tabwriter lays out Docker's tables.
fn table(rows: impl IntoIterator<Item = [String; 5]>) -> String {
    let rows: Vec<[String; 5]> = rows.into_iter().collect();
    let mut widths = [0usize; 5];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let pad = widths[i] - c.chars().count() + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// At most `max` characters, the last of them `…` when cut.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// Docker's sizes (go-units `HumanSize`): decimal units, three significant digits: `0B`,
/// `123B`, `1.23kB`, `4.26MB`.
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    let digits = match v {
        v if v >= 99.95 => 0,
        v if v >= 9.995 => 1,
        _ => 2,
    };
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

/// Docker's ages (go-units `HumanDuration`): `5 seconds`, `About a minute`, `3 hours`...
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h) = (s / 60, s / 3600);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", h / 24 / 365),
    }
}

/// `2026-12-06T10:49:01.123Z` (or with an offset of `+00:00`) as a point in time; other
/// offsets are taken as UTC, close enough for an age.
fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let time = time.split(['+', '-']).next()?;
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let ss: f64 = t.next()?.parse().ok()?;
    // days-from-civil (Howard Hinnant's algorithm), the inverse of `logs::rfc3339_nanos`
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_secs_f64(ss))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_read_as_dockers() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(123), "123B");
        assert_eq!(human_size(1234), "1.23kB");
        assert_eq!(human_size(4_257_000), "4.26MB");
        assert_eq!(human_size(12_000), "12kB");
        assert_eq!(human_duration(Duration::from_secs(5)), "5 seconds");
        assert_eq!(human_duration(Duration::from_secs(90)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600)), "3 hours");
        assert_eq!(human_duration(Duration::from_secs(20 * 86400)), "2 weeks");
        assert_eq!(ellipsis("abcdef", 4), "abc…");
        assert_eq!(ellipsis("abc", 4), "abc");
    }

    #[test]
    fn rfc3339_round_trips_through_the_logs_format() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let s = runtime::logs::rfc3339_nanos(t);
        assert_eq!(parse_rfc3339(&s), Some(t));
        assert!(parse_rfc3339("yesterday").is_none());
    }
}
