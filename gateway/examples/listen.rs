//! A minimal WebSocket client for trying the local stack: connects to the gateway's
//! WebSocket API and prints every message it receives (the pushed notifications).
//!
//! `cargo run -p rt-relay-gateway --example listen -- "ws://127.0.0.1:3001/?api_key=$RT_RELAY_KEY" [seconds]`
//! (the WebSocket API takes the API key as the `api_key` query parameter).

use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:3001".into());
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3600);
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    // The URL may carry the API key (`?api_key=`): show it without its query.
    let shown = url.split('?').next().unwrap_or_default();
    println!("connected to {shown}; waiting up to {seconds} s for pushes");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => println!("push: {text}"),
            Ok(Some(Ok(Message::Close(frame)))) => {
                println!("closed by the gateway: {frame:?}");
                return Ok(());
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => return Ok(()),
            Err(_) => {
                println!("no more pushes within {seconds} s");
                socket.close(None).await?;
                return Ok(());
            }
        }
    }
}
