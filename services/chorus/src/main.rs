//! `chorus`: parse the command line, set up logging, run the chosen mode.

use anyhow::{Context, bail};
use chorus::{
    cli::{
        Cli, Command, GatewayArgs, LogFormat, MigrateArgs, RouterArgs, StandaloneArgs, TokenArgs,
    },
    cluster::{self, GatewayNodeConfig, RouterNodeConfig},
    standalone::{self, StandaloneConfig},
};
use chorus_core::UserId;
use chorus_gateway::Authenticator;
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(&cli.log, cli.log_format)?;
    match cli.command {
        Command::Token(args) => token(args),
        Command::Standalone(args) => runtime()?.block_on(run_standalone(args)),
        Command::Gateway(args) => runtime()?.block_on(run_gateway(args)),
        Command::Router(args) => runtime()?.block_on(run_router(args)),
        Command::Migrate(args) => runtime()?.block_on(run_migrate(args)),
        Command::Send(args) => Ok(runtime()?.block_on(chorus::client::send(args))?),
        Command::Tail(args) => Ok(runtime()?.block_on(chorus::client::tail(args))?),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// This process's name in traces: the host (a pod's name) and the address it serves.
fn instance(addr: &str) -> String {
    match std::env::var("HOSTNAME") {
        Ok(host) if !host.is_empty() => format!("{host}/{addr}"),
        _ => addr.to_owned(),
    }
}

async fn run_gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let config = GatewayNodeConfig {
        listen: args.listen,
        jwt_secret: args.jwt_secret.into_bytes(),
        gateway: chorus_gateway::GatewayConfig {
            web: args.web,
            drain_window: args.drain_window,
            trace_client_parent: args.trace_client_parent,
            ..args.limits.gateway_config()
        },
        nats_url: args.cluster.nats_url.clone(),
        membership: args.cluster.membership(),
        routers: chorus_cluster::client::RingClientConfig {
            call_deadline: args.router_call_timeout,
            channels_per_router: args.router_channels,
            ..Default::default()
        },
    };
    let running = cluster::start_gateway(config).await?;
    // After binding, so that the instance is named by the address it serves (spans of
    // requests in the moments before are simply not recorded).
    let tracing = args
        .trace
        .init("chorus-gateway", &instance(&running.addr.to_string()))?;
    println!("chorus gateway listening on http://{}", running.addr);
    drain_on_signal(running.handle.clone());
    let done = running.done.await.context("gateway task panicked");
    tracing.shutdown().await;
    done?
}

async fn run_router(args: RouterArgs) -> anyhow::Result<()> {
    let tracing = args.trace.init("chorus-router", &instance(&args.name))?;
    let config = RouterNodeConfig {
        name: args.name.clone(),
        grpc_listen: args.grpc_listen,
        advertise: args.advertise_url.clone(),
        http_listen: args.http_listen,
        nats_url: args.cluster.nats_url.clone(),
        membership: args.cluster.membership(),
        cql: args.cql.config()?,
        router: args
            .rooms
            .router_config(args.max_body_bytes, args.max_attachment_bytes),
        ownership: args.ownership(),
    };
    let node = cluster::start_router(config).await?;
    println!(
        "chorus router {} serving gRPC on {} (health and metrics on http://{})",
        args.name, node.grpc_addr, node.http_addr
    );
    let stop = node.stopper();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: handing rooms over");
        let _ = stop.send(true);
    });
    let done = node.done.await.context("router task panicked");
    tracing.shutdown().await;
    done?
}

async fn run_migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let mut config = args.cql.config()?;
    config.replication = args.cql_replication;
    let report = chorus_store_cql::migrate(&config)
        .await
        .context("migrating the CQL schema")?;
    if report.created_keyspace {
        println!("created keyspace {}", report.keyspace);
    }
    if report.applied.is_empty() {
        println!(
            "keyspace {} is up to date (migrations {:?})",
            report.keyspace, report.already_present
        );
    } else {
        println!(
            "keyspace {}: applied migrations {:?} (already present: {:?})",
            report.keyspace, report.applied, report.already_present
        );
    }
    Ok(())
}

fn init_logging(filter: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_new(filter).with_context(|| format!("invalid log filter {filter:?}"))?;
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

fn token(args: TokenArgs) -> anyhow::Result<()> {
    let auth = Authenticator::new(args.jwt_secret.as_bytes())?;
    let user =
        UserId::new(&args.user).with_context(|| format!("invalid --user {:?}", args.user))?;
    println!("{}", auth.mint(&user, args.ttl));
    Ok(())
}

async fn run_standalone(args: StandaloneArgs) -> anyhow::Result<()> {
    if args.dev && !args.listen.ip().is_loopback() {
        bail!(
            "--dev signs in anyone by name, so it listens on loopback only (got {}); \
             run without --dev and with CHORUS_JWT_SECRET to serve other hosts",
            args.listen
        );
    }
    let (secret, generated) = match (args.jwt_secret, args.dev) {
        (Some(secret), _) => (secret, false),
        (None, true) => (standalone::dev_secret(&args.data_dir)?, true),
        (None, false) => bail!(
            "CHORUS_JWT_SECRET is not set: give a secret of at least {} bytes (--jwt-secret or the \
             environment), or run with --dev for a generated development secret",
            chorus_gateway::auth::MIN_SECRET_LEN
        ),
    };
    let config = StandaloneConfig {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        jwt_secret: secret.clone().into_bytes(),
        gateway: chorus_gateway::GatewayConfig {
            web: args.web,
            dev_sign_in: args.dev,
            drain_window: args.drain_window,
            trace_client_parent: args.trace_client_parent,
            ..args.limits.gateway_config()
        },
        router: args
            .rooms
            .router_config(args.limits.max_body_bytes, args.limits.max_attachment_bytes),
        store: Default::default(),
    };
    let running = standalone::start(config).await?;
    let addr = running.addr;
    let tracing = args
        .trace
        .init("chorus-standalone", &instance(&addr.to_string()))?;
    println!("chorus standalone listening on http://{addr}");
    if args.web && chorus_gateway::web::app_embedded() {
        if args.dev {
            println!("\n  web app:       open http://{addr}/ and sign in with any name");
        } else {
            println!("\n  web app:       http://{addr}/ (sign in with a token)");
        }
    }
    if generated {
        let exe = std::env::current_exe().ok();
        let cwd = std::env::current_dir().ok();
        let exe = match (exe, cwd) {
            (Some(exe), Some(cwd)) => exe
                .strip_prefix(&cwd)
                .map(|p| format!("./{}", p.display()))
                .unwrap_or_else(|_| exe.display().to_string()),
            _ => "chorus".into(),
        };
        println!(
            "\n  dev mode: generated JWT secret (kept in {dir}/dev-jwt-secret; never use --dev in production)\n\
             \n  from a shell:  CHORUS_JWT_SECRET={secret} {exe} tail --user bob --room general --since 0\
             \n                 CHORUS_JWT_SECRET={secret} {exe} send --user alice --room general hello\
             \n  get a token:   CHORUS_JWT_SECRET={secret} {exe} token --user alice\
             \n  connect:       websocat -H \"Authorization: Bearer $TOKEN\" ws://{addr}/v1/ws\
             \n  then send:     {{\"type\":\"join\",\"id\":1,\"room\":\"general\",\"since\":0}}\
             \n                 {{\"type\":\"send\",\"id\":2,\"room\":\"general\",\"client_msg_id\":\"c-1\",\"body\":\"hello\"}}\n",
            dir = args.data_dir.display(),
        );
    }
    drain_on_signal(running.handle.clone());
    let done = running.done.await.context("server task panicked");
    tracing.shutdown().await;
    done?
}

/// On SIGTERM or Ctrl-C, drains the gateway; a second signal exits at once.
fn drain_on_signal(handle: chorus_gateway::GatewayHandle) {
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            "draining: readiness fails, clients are told to reconnect (close 1001); \
             a second signal exits at once"
        );
        handle.shutdown();
        wait_for_signal().await;
        tracing::warn!("second signal: exiting without waiting for the drain");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())
            .expect("installing a SIGTERM handler succeeds at start-up");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
