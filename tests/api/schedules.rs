//! Schedules: with several daemons on one database each tick enqueues one job; a tick is skipped,
//! not doubled, while a job of the same app is still running.

use chrono::{DateTime, Utc};
use supasaasy::config::Config;
use supasaasy::context::Context;
use supasaasy::scheduler;
use supasaasy::store::schedules::TickOutcome;
use supasaasy_testkit::fake_stripe::StripeData;

use crate::helpers::{spawn_app, Setup};

#[tokio::test]
async fn two_daemons_sharing_a_schedule_enqueue_each_tick_once() {
    let app = spawn_app(Setup {
        workers: false,
        extra_toml: "[[sync_schedules]]\napp_key = \"stripe_test\"\ncron = \"*/5 * * * *\"\nmode = \"full\"\n".into(),
        ..Setup::stripe(StripeData::empty())
    })
    .await;
    // A second daemon: its own pool and config, the same database.
    let other = Context::build(Config::clone(&app.ctx.config)).unwrap();
    let schedule = app.ctx.config.sync_schedules[0].clone();
    let tick: DateTime<Utc> = "2026-01-01T10:05:00Z".parse().unwrap();

    for round in 0..5 {
        let at = tick + chrono::Duration::minutes(5 * round);
        let (a, b) = tokio::join!(
            scheduler::fire(&app.ctx, &schedule, at),
            scheduler::fire(&other, &schedule, at)
        );
        let outcomes = [a.unwrap(), b.unwrap()];
        let enqueued: Vec<_> = outcomes
            .iter()
            .filter(|o| matches!(o, TickOutcome::Enqueued(_)))
            .collect();
        let skipped = outcomes
            .iter()
            .filter(|o| matches!(o, TickOutcome::Skipped(_)))
            .count();
        let fired = outcomes
            .iter()
            .filter(|o| matches!(o, TickOutcome::AlreadyFired))
            .count();
        assert_eq!(fired, 1, "round {round}: {outcomes:?}");
        if round == 0 {
            assert_eq!(enqueued.len(), 1, "{outcomes:?}");
        } else {
            // The first job is still pending (no workers run here): the tick is skipped.
            assert_eq!(skipped, 1, "round {round}: {outcomes:?}");
        }
    }
    let jobs: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM supasaasy.sync_jobs WHERE trigger = 'schedule'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs, 1);
    assert_eq!(app.count("schedule_ticks").await, 5);

    // Once the job has ended the next tick enqueues again.
    app.db()
        .await
        .execute("UPDATE supasaasy.sync_jobs SET status = 'completed'", &[])
        .await
        .unwrap();
    let next = scheduler::fire(&other, &schedule, tick + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert!(matches!(next, TickOutcome::Enqueued(_)), "{next:?}");
    let job: String = app
        .db()
        .await
        .query_one(
            "SELECT mode FROM supasaasy.sync_jobs WHERE status = 'pending'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(job, "full");
    app.stop().await;
}
