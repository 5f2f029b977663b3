//! The load test's baseline server: `cargo run --release --example bare_twiml -- 127.0.0.1:9090`.
//! Answers every POST with a fixed TwiML document and does nothing else.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!(
        "bare TwiML baseline listening on {}",
        listener.local_addr()?
    );
    axum::serve(listener, callgate::loadtest::baseline::app()).await?;
    Ok(())
}
