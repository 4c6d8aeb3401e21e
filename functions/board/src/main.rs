//! Lambda `board` (`GET /` and `GET /board/{file}`, no API key: the page asks its user for
//! one): wiring only; the handler is `rt_relay_shared::handlers::board::Board`, which serves
//! the files of `board/` embedded at compile time.

use std::{convert::Infallible, sync::Arc};

use lambda_http::{run, service_fn, Error, Request};
use rt_relay_shared::{handlers::board::Board, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let board = Arc::new(Board::from_env());
    run(service_fn(move |req: Request| {
        let board = Arc::clone(&board);
        async move { Ok::<_, Infallible>(board.handle(req).await) }
    }))
    .await
}
