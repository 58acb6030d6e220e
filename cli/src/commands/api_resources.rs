//! `minikctl api-resources`: the table of what the server serves, straight from discovery —
//! the same list that resolves `po` to `pods` in every other command. Columns as kubectl's:
//! NAME, SHORTNAMES, APIVERSION, NAMESPACED, KIND. Read next: `../discovery.rs`.

use crate::discovery::Resource;
use crate::printer::emit;
use crate::printer::table::Grid;

use super::Ctx;

/// `-o` of `api-resources`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The table (the default, with the same columns).
    Wide,
    /// Only the qualified plural names.
    Name,
}

/// `api-resources [--namespaced=BOOL] [--api-group=G] [-o name] [--no-headers]`.
#[derive(clap::Args, Debug)]
pub struct ApiResourcesArgs {
    /// Only namespaced (true) or only cluster-scoped (false) resources.
    #[arg(long)]
    pub namespaced: Option<bool>,
    /// Only the resources of this API group ("" for the core group).
    #[arg(long = "api-group")]
    pub api_group: Option<String>,
    /// `name`: print `pods`, `deployments.apps`, one per line.
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Output>,
    /// Do not print the header line.
    #[arg(long = "no-headers")]
    pub no_headers: bool,
}

pub async fn run(ctx: &Ctx, args: ApiResourcesArgs) -> anyhow::Result<()> {
    let discovery = ctx.discovery().await?;
    let mut resources: Vec<&Resource> = discovery
        .resources
        .iter()
        .filter(|r| args.namespaced.is_none_or(|n| r.namespaced == n))
        .filter(|r| args.api_group.as_ref().is_none_or(|g| &r.group == g))
        .collect();
    resources.sort_by(|a, b| (&a.group, &a.plural).cmp(&(&b.group, &b.plural)));
    if args.output == Some(Output::Name) {
        let names: String = resources
            .iter()
            .map(|r| format!("{}\n", r.qualified_plural()))
            .collect();
        emit(&names)?;
        return Ok(());
    }
    emit(&grid(&resources).render(args.no_headers))?;
    Ok(())
}

fn grid(resources: &[&Resource]) -> Grid {
    Grid {
        headers: ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
            .map(String::from)
            .to_vec(),
        rows: resources
            .iter()
            .map(|r| {
                vec![
                    r.plural.clone(),
                    r.short_names.join(","),
                    r.api_version(),
                    r.namespaced.to_string(),
                    r.kind.clone(),
                ]
            })
            .collect(),
    }
}
