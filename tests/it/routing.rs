//! Speech routing learns from what agents confirm: words no script phrase knows are routed
//! after `callgate routing train`, without a restart.

use crate::common::*;
use callgate::store::users::Role;

const BILINGUAL: &str = "+48225550100";

async fn say(caller: &mut Caller, words: &str) -> Doc {
    let last = caller.last.clone().unwrap();
    let action = last.gather().unwrap().action.clone();
    let mut params = caller.params("in-progress");
    params.push(("SpeechResult".into(), words.into()));
    params.push(("Confidence".into(), "0.9".into()));
    caller.fetch(&action, params).await
}

#[tokio::test]
async fn routing_learns_from_confirmed_categories() {
    let app = TestApp::spawn().await;
    let admin = app.user("admin", Role::Admin);
    let phone = "+48612000000";
    app.add_account("ROUTE-1", phone, Some("246813"), false);
    let phrases = [
        "modem nie łączy się z siecią",
        "mój modem ciągle się rozłącza",
        "modem miga na czerwono",
        "nie mam zasięgu w domu, modem",
        "zasięg znika wieczorem",
        "modemu nie da się włączyć",
        "słaby zasięg w mieszkaniu",
        "modem się resetuje",
        "brak zasięgu od rana",
        "modem nie odpowiada",
        "zasięgu nie ma wcale",
        "modem przestał działać",
    ];
    for words in phrases {
        let mut c = Caller::new(&app, phone);
        c.to = BILINGUAL.into();
        c.dial().await;
        c.press("1").await;
        c.press("246813#").await;
        let unsure = say(&mut c, words).await;
        assert!(
            unsure.said().contains("Nie zrozumieliśmy"),
            "{words}: {}",
            unsure.said()
        );
        assert!(c.press("3").await.handoff().is_some());
        let r = app
            .http
            .post(format!("{}/api/calls/{}/outcome", app.addr, c.call_sid))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"resolved": true, "category": "general", "note": "", "recurring": true}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let out = callgate_cli(&app.data_dir, &["routing", "train", "--holdout", "0.25"]);
    assert!(out.status.success(), "{out:?}");
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{report}");
    assert!(report.contains("accuracy on held-out calls"), "{report}");
    assert!(report.contains("general"), "{report}");

    // The running server picks the model up: the new words now route.
    let mut routed = false;
    for _ in 0..30 {
        let mut c = Caller::new(&app, phone);
        c.to = BILINGUAL.into();
        c.dial().await;
        c.press("1").await;
        c.press("246813#").await;
        let after = say(&mut c, "znowu modem i zasięg").await;
        if after.handoff().is_some() {
            routed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(routed, "the learned words route to general");
}
