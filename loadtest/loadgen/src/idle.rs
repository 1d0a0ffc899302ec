//! `idle`: hold N joined connections open (memory per idle connection).

use std::{
    io::{Read, Write},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::bail;
use futures_util::StreamExt;
use tokio::{sync::watch, task::JoinSet, time::Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{self, Target};

#[derive(Debug, clap::Args)]
pub struct IdleArgs {
    /// Connections to open.
    #[arg(long)]
    pub conns: usize,
    /// Room every connection joins.
    #[arg(long, default_value = "idle")]
    pub room: String,
    /// Release the connections after this many seconds even if stdin is still open.
    #[arg(long)]
    pub hold_secs: Option<u64>,
}

pub async fn run(target: Arc<Target>, args: IdleArgs, user_prefix: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let users = (0..args.conns)
        .map(|i| format!("{user_prefix}-idle-{i}"))
        .collect();
    let conns = conn::connect_many(&target, users, &args.room, conn::small_config()).await?;
    let n = conns.len();
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "ready conns={n} elapsed_ms={}",
            started.elapsed().as_millis()
        )?;
        out.flush()?;
    }

    // Every connection keeps reading (so pings are answered) until told to stop.
    let (stop_tx, stop_rx) = watch::channel(false);
    let disconnects = Arc::new(AtomicU64::new(0));
    let mut holders = JoinSet::new();
    for (i, joined) in conns.into_iter().enumerate() {
        let mut stop = stop_rx.clone();
        let disconnects = disconnects.clone();
        let mut ws = joined.ws;
        holders.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => {
                        let _ = tokio::time::timeout(Duration::from_secs(5), async {
                            let _ = ws.close(None).await;
                            while let Some(Ok(_)) = ws.next().await {}
                        }).await;
                        return;
                    }
                    m = ws.next() => match m {
                        Some(Ok(Message::Close(frame))) => {
                            report_disconnect(&disconnects, i, &format!("closed by server: {frame:?}"));
                            return;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            report_disconnect(&disconnects, i, &e.to_string());
                            return;
                        }
                        None => {
                            report_disconnect(&disconnects, i, "connection ended");
                            return;
                        }
                    }
                }
            }
        });
    }

    // Hold until stdin reaches EOF (read on a plain thread) or --hold-secs passes.
    let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(k) if k > 0) {}
        let _ = eof_tx.send(());
    });
    let hold = async {
        match args.hold_secs {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = eof_rx => {}
        _ = hold => {}
    }
    let held_ms = started.elapsed().as_millis();
    let _ = stop_tx.send(true);
    while holders.join_next().await.is_some() {}
    let lost = disconnects.load(Ordering::Relaxed);
    // Ignore a closed stdout (the caller may have stopped reading after `ready`).
    let _ = writeln!(
        std::io::stdout(),
        "closed conns={n} disconnects={lost} total_ms={held_ms}"
    );
    if lost > 0 {
        bail!("{lost} of {n} idle connections were dropped while held");
    }
    Ok(())
}

fn report_disconnect(count: &AtomicU64, i: usize, why: &str) {
    let before = count.fetch_add(1, Ordering::Relaxed);
    if before < 5 {
        eprintln!("idle connection {i} lost: {why}");
    }
}
