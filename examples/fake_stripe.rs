//! Serves a fake Stripe API seeded with generated data, until SIGTERM or Ctrl-C.
//!
//! Prints one line, `STRIPE_BASE_URL=http://127.0.0.1:PORT`, once it accepts connections.
//!
//! ```sh
//! cargo run --example fake_stripe -- --listen 127.0.0.1:12111 --customers 1000 --invoices 500
//! curl -u sk_test_fake: 'http://127.0.0.1:12111/v1/customers?limit=3'
//! curl -u sk_test_fake: 'http://127.0.0.1:12111/v1/invoices?limit=3'
//! ```

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use supasaasy_testkit::fake_stripe::{Counts, FakeStripe, StripeData, DEFAULT_API_KEY};
use tokio::signal::unix::{signal, SignalKind};

/// A fake Stripe API for trying supasaasy without a Stripe account.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Customers to generate.
    #[arg(long, default_value_t = 200)]
    customers: usize,
    /// Products to generate.
    #[arg(long, default_value_t = 5)]
    products: usize,
    /// Prices (and plans) per product.
    #[arg(long, default_value_t = 2)]
    prices_per_product: usize,
    /// Subscriptions to generate.
    #[arg(long, default_value_t = 150)]
    subscriptions: usize,
    /// Items per subscription (at most the number of prices).
    #[arg(long, default_value_t = 2)]
    items: usize,
    /// Cancel every Nth subscription (0: none).
    #[arg(long, default_value_t = 4)]
    canceled_every: usize,
    /// Invoices to generate (paid, open and a few void).
    #[arg(long, default_value_t = 300)]
    invoices: usize,
    /// Lines per invoice.
    #[arg(long, default_value_t = 2)]
    lines_per_invoice: usize,
    /// Charges to generate.
    #[arg(long, default_value_t = 300)]
    charges: usize,
    /// Payment intents to generate (most succeeded with a charge).
    #[arg(long, default_value_t = 300)]
    payment_intents: usize,
    /// Refunds to generate.
    #[arg(long, default_value_t = 0)]
    refunds: usize,
    /// Objects of every other resource (coupons, credit notes, payouts...), and customers with a
    /// tax id, a payment method and a discount.
    #[arg(long, default_value_t = 0)]
    others: usize,
    /// The API key clients must send.
    #[arg(long, default_value = DEFAULT_API_KEY)]
    api_key: String,
    /// Delay every answer by this many milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

#[tokio::main]
async fn main() -> io::Result<()> {
    let args = Args::parse();
    let counts = Counts {
        customers: args.customers,
        products: args.products,
        prices_per_product: args.prices_per_product,
        subscriptions: args.subscriptions,
        items_per_subscription: args.items,
        canceled_every: args.canceled_every,
        invoices: args.invoices,
        lines_per_invoice: args.lines_per_invoice,
        charges: args.charges,
        payment_intents: args.payment_intents,
        refunds: args.refunds,
        others: args.others,
        ..Counts::default()
    };
    let data = StripeData::generate(&counts).with_api_key(args.api_key);
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let stripe = FakeStripe::start_on(args.listen, data).await?;
    stripe.set_latency(Duration::from_millis(args.latency_ms));
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "STRIPE_BASE_URL={}", stripe.base_url())?;
    stdout.flush()?;
    drop(stdout);
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    stripe.shutdown().await;
    Ok(())
}
