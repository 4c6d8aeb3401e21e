//! The cold-start baseline for `make bench`: a hello-world Lambda with nothing but
//! `lambda_runtime` and tokio, echoing its event. Its own package (a bin of the tests crate
//! would build that crate's dependencies too), built in the same `cargo build --release` as
//! the functions, so `cold_start_bench` can divide each function's start-up time, binary
//! size and peak RSS by this one's.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move { Ok::<_, Error>(event.payload) })).await
}
