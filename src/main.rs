//! The `callgate` binary: everything lives in the library; this only hands over the arguments.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    callgate::cli::run().await
}
