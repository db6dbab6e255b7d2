//! `plunk serve`: every endpoint group in one process on the embedded store (or any store the
//! flags name). On first start with an empty store it creates a project and prints its keys.

use crate::cli::{Cli, ServeArgs};
use crate::output::Failure;
use crate::stream_feed::DynamoStreamFeed;
use plunk_domain::project::{Tracking, DEFAULT_RATE_LIMIT};
use plunk_http_kit::{AppState, Settings};
use plunk_store::backend::dynamo::DynamoTable;
use plunk_store::config::StoreConfig;

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn run(cli: &Cli, args: &ServeArgs) -> Result<(), Failure> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,aws_config=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = cli.store.config()?;
    if matches!(config, StoreConfig::Dynamo { .. }) {
        cli.store
            .announce_new_data_dir("the local queues, outbox and stream reader id");
    }
    let store = with_stream_feed(config.open().await?, &config, &cli.store.data_dir).await?;
    // Secrets an earlier build kept in the shared SYSTEM partition move to their own.
    if store.migrate_legacy_secrets().await? > 0 {
        println!("Moved the server secrets to their own partitions");
    }
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .map_err(|e| Failure::usage(format!("cannot listen on {}: {e}", args.bind)))?;
    let address = listener
        .local_addr()
        .map_err(|e| Failure::store(e.to_string()))?;
    let base_url = format!("http://{address}");
    let public_url = public_url(address)?;

    let projects = store.projects().list().await?;
    if projects.is_empty() {
        let (project, secret, public) = store
            .projects()
            .create("Local", DEFAULT_RATE_LIMIT, Tracking::Enabled, "en")
            .await?;
        println!("Created project {} ({})", project.name, project.id);
        println!("  secret key: {}", secret.expose());
        println!("  public key: {}", public.expose());
        println!(
            "  These keys are shown once; more with 'plunk keys rotate --project {}'.",
            project.id
        );
    } else {
        println!(
            "{} project(s) in this store; keys were printed when they were created ('plunk project list').",
            projects.len()
        );
    }

    let data_dir = cli.store.data_dir.clone();
    let settings = Settings {
        allow_private_webhooks: args.allow_private_webhooks,
        ..Settings::from_env()
    };
    if settings.allow_private_webhooks {
        println!("Webhooks may call loopback and private addresses (--allow-private-webhooks)");
    }
    let runtime = crate::background::start(&store, &data_dir, &settings, &public_url).await?;
    let state = AppState::new(store, settings)
        .with_send_queues(runtime.queues.clone())
        .with_blobs(runtime.blobs.clone())
        .with_webhook_queue(runtime.webhook_queue.clone())
        .with_workflow_queue(runtime.workflow_queue.clone())
        .with_webhook_secrets(runtime.webhook_secrets.clone());
    let extra = match &runtime.outbox_dir {
        Some(dir) => crate::outbox_page::router(dir.clone()),
        None => axum::Router::new(),
    };
    if let Some(dir) = &runtime.outbox_dir {
        println!(
            "Sent mail goes to {} and is listed at {base_url}/_local/outbox",
            dir.display()
        );
    }
    let app = plunk_api::service_with(state, plunk_api::Group::ALL, extra);
    if public_url != base_url {
        println!("Hosted unsubscribe pages in sent mail link to {public_url}");
    }
    println!("Serving the API at {base_url}  (try: curl {base_url}/health)");
    // The peer address reaches the handlers: per-source limits read it.
    let served = crate::http_server::serve(listener, app, shutdown())
        .await
        .map_err(|e| Failure::store(e.to_string()));
    runtime.shutdown.run().await;
    served
}

/// The base URL of the hosted-page links in sent mail: `PLUNK_PUBLIC_URL` when set (e.g. behind
/// a proxy), else this server's own address, with `127.0.0.1` for a wildcard bind.
fn public_url(address: std::net::SocketAddr) -> Result<String, Failure> {
    if let Some(url) = std::env::var("PLUNK_PUBLIC_URL")
        .ok()
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty())
    {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Failure::usage(format!(
                "PLUNK_PUBLIC_URL={url:?} is not an http:// or https:// URL"
            )));
        }
        return Ok(url);
    }
    let host = if address.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), address.port())
    } else {
        address
    };
    Ok(format!("http://{host}"))
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// On DynamoDB, the store with the table's stream as its change feed, so this process dispatches
/// events as the event-dispatch function does when deployed (the stream is enabled if missing).
async fn with_stream_feed(
    store: plunk_store::Store,
    config: &StoreConfig,
    data_dir: &std::path::Path,
) -> Result<plunk_store::Store, Failure> {
    let StoreConfig::Dynamo {
        table, endpoint, ..
    } = config
    else {
        return Ok(store);
    };
    if store.change_feed().is_some() {
        return Ok(store);
    }
    let stream = DynamoTable::from_env(table, endpoint.as_deref())
        .await
        .ensure_stream()
        .await?;
    let feed = DynamoStreamFeed::open(stream, endpoint.as_deref(), store.table().clone(), data_dir)
        .await?;
    println!("Dispatching events from the stream of table {table}");
    Ok(store.with_change_feed(std::sync::Arc::new(feed)))
}
