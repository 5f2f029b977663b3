//! Every statement the call flow and the screen-pop run is answered through an index: no
//! statement scans a table, so a webhook costs the same with 1,000 or 1,000,000 accounts and
//! calls. The statements are not listed by hand: a traced connection records whatever the
//! flow actually executes, and each is then explained.

use std::sync::Mutex;

use crate::common::*;
use callgate::domain::{CallSid, CallerId, Keypad, Region, StirVerstat};
use callgate::ivr::engine::{CallInput, Event};
use callgate::store::users::Role;
use callgate::store::{CallsDb, UsersDb, now_ms};
use callgate::twilio::voice;

/// (statement as written, statement with its parameters filled in)
static EXECUTED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn record(event: rusqlite::trace::TraceEvent<'_>) {
    if let rusqlite::trace::TraceEvent::Stmt(stmt, sql) = event {
        let expanded = stmt.expanded_sql().unwrap_or_else(|| sql.to_owned());
        EXECUTED.lock().unwrap().push((sql.to_owned(), expanded));
    }
}

fn params(sid: &str, from: &str, digits: Option<&str>) -> CallInput {
    CallInput {
        call_sid: CallSid::parse(sid).unwrap(),
        caller: CallerId::from_twilio(Some(from), Region::default()),
        called: Some(DIALED.into()),
        stir: StirVerstat::parse(None),
        digits: Keypad::from_digits(digits),
        speech: None,
    }
}

#[tokio::test]
async fn no_statement_of_a_call_scans_a_table() {
    let app = TestApp::spawn().await;
    let secret = app
        .add_account("ACC-Q1", "+48601234567", Some("246810"), true)
        .unwrap();
    app.add_account("ACC-Q2", "+48602345678", Some("135790"), false);
    let call_code = app.call_code("ACC-Q2", 600_000, now_ms());
    let token = app.user("agent", Role::Agent);
    callgate::loadtest::fixtures::seed(&app.store(), &app.keys(), 20, 200, true).unwrap();
    // No ANALYZE, as in production: without statistics SQLite plans for large tables. (With
    // statistics from these few rows it would rightly prefer scanning a one-row table.)
    let conn = rusqlite::Connection::open(app.data_dir.join("callgate.db")).unwrap();
    conn.trace_v2(
        rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT,
        Some(record),
    );

    let ctx = &app.state.ivr;
    let run = |conn: &rusqlite::Connection, p: CallInput, event: Event| {
        voice::answer(conn, ctx, &p, event, now_ms()).unwrap();
    };
    // Account code + TOTP + menu + hand-off + its result + status.
    let a = "CA00000000000000000000000000000001";
    run(&conn, params(a, "+48700000001", None), Event::Incoming);
    run(
        &conn,
        params(a, "+48700000001", Some("246810")),
        Event::Input("account-code".into()),
    );
    let totp = totp_now(&secret);
    run(
        &conn,
        params(a, "+48700000001", Some(&totp)),
        Event::Input("totp".into()),
    );
    run(
        &conn,
        params(a, "+48700000001", Some("1")),
        Event::Input("menu".into()),
    );
    run(
        &conn,
        params(a, "+48700000001", None),
        Event::HandoffResult(Some("bridged".into())),
    );
    conn.record_call_status(a, "completed", Some(30), now_ms())
        .unwrap();
    // Caller ID match; a wrong code and a wrong TOTP; silence; a call code.
    let b = "CA00000000000000000000000000000002";
    run(&conn, params(b, "+48601234567", None), Event::Incoming);
    run(
        &conn,
        params(b, "+48601234567", Some("999999")),
        Event::Input("account-code".into()),
    );
    run(
        &conn,
        params(b, "+48601234567", None),
        Event::Input("account-code".into()),
    );
    run(
        &conn,
        params(b, "+48601234567", Some("246810")),
        Event::Input("account-code".into()),
    );
    let c = "CA00000000000000000000000000000003";
    run(&conn, params(c, "+48700000002", None), Event::Incoming);
    run(
        &conn,
        params(c, "+48700000002", Some("246810")),
        Event::Input("account-code".into()),
    );
    run(
        &conn,
        params(c, "+48700000002", Some("000000")),
        Event::Input("totp".into()),
    );
    let d = "CA00000000000000000000000000000004";
    run(&conn, params(d, "+48700000003", None), Event::Incoming);
    run(
        &conn,
        params(d, "+48700000003", Some(&call_code)),
        Event::Input("account-code".into()),
    );
    // The screen-pop API.
    conn.user_by_token(&token).unwrap().unwrap();
    let call = conn.call(a).unwrap().unwrap();
    callgate::agent::ScreenPop::load(&conn, &call, now_ms(), callgate::agent::view::Viewer::Agent)
        .unwrap();
    conn.trace_v2(rusqlite::trace::TraceEventCodes::empty(), None);

    let mut statements: Vec<(String, String)> = EXECUTED.lock().unwrap().clone();
    statements.sort();
    statements.dedup_by(|a, b| a.0 == b.0);
    let mut explained = 0;
    let mut report = String::new();
    for (written, sql) in &statements {
        let head = sql.trim_start().to_ascii_uppercase();
        if !(head.starts_with("SELECT")
            || head.starts_with("UPDATE")
            || head.starts_with("INSERT")
            || head.starts_with("DELETE"))
        {
            continue;
        }
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let plan: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        explained += 1;
        let first_line = written.split_whitespace().collect::<Vec<_>>().join(" ");
        report.push_str(&format!(
            "{}\n    {}\n",
            &first_line[..first_line.len().min(110)],
            plan.join(" / ")
        ));
        for step in &plan {
            assert!(
                !step.starts_with("SCAN"),
                "full scan in {sql}\nplan: {plan:?}"
            );
        }
    }
    println!("{report}");
    assert!(
        explained >= 15,
        "the trace saw the flow's statements ({explained})"
    );
}
