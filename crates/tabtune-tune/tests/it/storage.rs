//! Storage round trips (every column) on in-memory SQLite, a SQLite file and PostgreSQL, and
//! the errors of bad URLs, foreign databases and direction mismatches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tabtune_tune::storage::{self, AttrKind, NewTrial, Storage};
use tabtune_tune::study::{Outcome, Study};
use tabtune_tune::{Choice, Direction, Distribution, ParamValue, TrialState};

use crate::common::{postgres_url, toy_engine, unique_name};

fn round_trip(url: &str) {
    let s = storage::open(url).unwrap();
    let name = unique_name("round-trip");
    let study = s.create_study(&name, Direction::Maximize).unwrap();
    assert_eq!(s.find_study(&name).unwrap().unwrap(), study);
    let e = s
        .create_study(&name, Direction::Maximize)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already exists") && e.contains(&name), "{e}");
    assert!(s.find_study("no-such-study").unwrap().is_none());

    s.set_study_attr(study.study_id, AttrKind::User, "fixed", &json!({"a": 1}))
        .unwrap();
    s.set_study_attr(study.study_id, AttrKind::User, "fixed", &json!({"a": 2}))
        .unwrap();
    s.set_study_attr(study.study_id, AttrKind::System, "sampler", &json!("tpe"))
        .unwrap();
    assert_eq!(
        s.study_attrs(study.study_id, AttrKind::User).unwrap(),
        BTreeMap::from([("fixed".to_owned(), json!({"a": 2}))])
    );
    assert_eq!(
        s.study_attrs(study.study_id, AttrKind::System).unwrap()["sampler"],
        json!("tpe")
    );

    let float = Distribution::Float {
        low: 1e-3,
        high: 1.0,
        log: true,
        step: None,
    };
    let int = Distribution::Int {
        low: 1,
        high: 9,
        log: false,
        step: 2,
    };
    let cat = Distribution::Categorical {
        choices: vec![
            Choice::Str("a".into()),
            Choice::Null,
            Choice::Int(3),
            Choice::Bool(true),
        ],
    };
    let mut template = NewTrial::default();
    template.params.insert("lr".into(), (float.clone(), 0.0123));
    template.params.insert("n".into(), (int.clone(), 5.0));
    template.params.insert("kind".into(), (cat.clone(), 2.0));
    template.intermediate = BTreeMap::from([
        (0, 0.5),
        (1, f64::INFINITY),
        (2, f64::NEG_INFINITY),
        (3, f64::NAN),
    ]);
    template.user_attrs.insert("u".into(), json!([1, 2]));
    template.system_attrs.insert("s".into(), json!({"k": null}));
    let t = s
        .create_trial(study.study_id, &template, None)
        .unwrap()
        .unwrap();
    assert_eq!((t.number, t.state), (0, TrialState::Running));
    assert!(t.start_us.is_some() && t.complete_us.is_none());
    s.set_intermediate(t.trial_id, 4, 0.25).unwrap();
    s.set_intermediate(t.trial_id, 4, 0.125).unwrap(); // replaces
    s.set_trial_attr(t.trial_id, AttrKind::User, "v", &json!("x"))
        .unwrap();
    s.heartbeat(t.trial_id).unwrap();
    s.heartbeat(t.trial_id).unwrap();
    assert!(
        s.finish_trial(t.trial_id, TrialState::Complete, Some(f64::INFINITY))
            .unwrap()
    );
    assert!(
        !s.finish_trial(t.trial_id, TrialState::Fail, None).unwrap(),
        "a finished trial cannot end twice"
    );
    assert!(
        s.finish_trial(t.trial_id, TrialState::Running, None)
            .is_err()
    );

    let back = s.trial(t.trial_id).unwrap();
    assert_eq!(back.state, TrialState::Complete);
    assert_eq!(back.value, Some(f64::INFINITY));
    assert_eq!(back.params["lr"], ParamValue::Float(0.0123));
    assert_eq!(back.params["n"], ParamValue::Int(5));
    assert_eq!(back.params["kind"], ParamValue::Choice(Choice::Int(3)));
    assert_eq!(back.distributions["lr"], float);
    assert_eq!(back.distributions["n"], int);
    assert_eq!(back.distributions["kind"], cat);
    assert_eq!(back.intermediate[&0], 0.5);
    assert_eq!(back.intermediate[&1], f64::INFINITY);
    assert_eq!(back.intermediate[&2], f64::NEG_INFINITY);
    assert!(back.intermediate[&3].is_nan());
    assert_eq!(back.intermediate[&4], 0.125);
    assert_eq!(back.user_attrs["u"], json!([1, 2]));
    assert_eq!(back.user_attrs["v"], json!("x"));
    assert_eq!(back.system_attrs["s"], json!({"k": null}));
    assert!(back.complete_us.unwrap() >= back.start_us.unwrap());

    // A finite value, a pruned trial without value, a waiting trial claimed once.
    let t1 = s
        .create_trial(study.study_id, &NewTrial::default(), None)
        .unwrap()
        .unwrap();
    assert!(
        s.finish_trial(t1.trial_id, TrialState::Complete, Some(-2.5))
            .unwrap()
    );
    let t2 = s
        .create_trial(study.study_id, &NewTrial::default(), None)
        .unwrap()
        .unwrap();
    assert!(
        s.finish_trial(t2.trial_id, TrialState::Pruned, None)
            .unwrap()
    );
    let waiting = NewTrial {
        waiting: true,
        ..NewTrial::default()
    };
    let w = s
        .create_trial(study.study_id, &waiting, None)
        .unwrap()
        .unwrap();
    assert_eq!((w.state, w.start_us), (TrialState::Waiting, None));
    let claimed = s.claim_waiting_trial(study.study_id).unwrap().unwrap();
    assert_eq!(
        (claimed.trial_id, claimed.state),
        (w.trial_id, TrialState::Running)
    );
    assert!(s.claim_waiting_trial(study.study_id).unwrap().is_none());

    // The budget counts COMPLETE + PRUNED + RUNNING + WAITING (4 here).
    assert!(
        s.create_trial(study.study_id, &NewTrial::default(), Some(4))
            .unwrap()
            .is_none()
    );
    assert!(
        s.create_trial(study.study_id, &NewTrial::default(), Some(5))
            .unwrap()
            .is_some()
    );

    let all = s.trials(study.study_id).unwrap();
    assert_eq!(
        all.iter().map(|t| t.number).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(all[1].value, Some(-2.5));
    assert_eq!(all[2].value, None);
    let counts = s.count_states(study.study_id).unwrap();
    assert_eq!(counts["COMPLETE"], 2);
    assert_eq!(counts["PRUNED"], 1);
    assert_eq!(counts["RUNNING"], 2);
    assert!(s.studies().unwrap().iter().any(|r| r.name == name));
}

#[test]
fn round_trip_in_memory() {
    round_trip("memory");
}

#[test]
fn round_trip_sqlite_file_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:///{}", dir.path().join("s.db").display());
    round_trip(&url);
    // Reopening checks the schema revision and reads what was written.
    let s = storage::open(&url).unwrap();
    assert_eq!(s.studies().unwrap().len(), 1);
}

#[test]
fn round_trip_postgres() {
    if let Some(url) = postgres_url() {
        round_trip(&url);
    }
}

#[test]
fn stale_trials_are_failed_and_retried_with_their_params() {
    let s: Arc<dyn Storage> = Arc::new(storage::open("memory").unwrap());
    let study = Study::open(
        Arc::clone(&s),
        "stale",
        Direction::Minimize,
        toy_engine(1, Duration::from_hours(1), Duration::from_millis(200)),
    )
    .unwrap();
    let h = study.ask().unwrap();
    let (number, params) = (h.number(), h.params().clone());
    // The worker "dies": its handle is leaked, so no tell and no more heartbeats.
    std::mem::forget(h);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(study.fail_stale_trials().unwrap(), [number]);
    let trials = study.trials().unwrap();
    assert_eq!(trials[0].state, TrialState::Fail);
    assert!(
        trials[0].system_attrs["fail_reason"]
            .as_str()
            .unwrap()
            .contains("heartbeat"),
        "{:?}",
        trials[0].system_attrs
    );
    assert_eq!(trials[1].state, TrialState::Waiting);
    assert_eq!(trials[1].system_attrs["failed_trial"], json!(number));
    assert_eq!(trials[1].system_attrs["retry_history"], json!([number]));
    // The next ask runs the retry with the same parameters.
    let retry = study.ask().unwrap();
    assert_eq!(retry.number(), 1);
    assert_eq!(retry.params(), &params);
    let done = retry.tell(Outcome::Complete(1.0)).unwrap();
    assert_eq!(done.state, TrialState::Complete);
}

#[test]
fn direction_mismatch_and_missing_studies_are_named() {
    let s: Arc<dyn Storage> = Arc::new(storage::open("memory").unwrap());
    let one = || toy_engine(1, Duration::from_secs(10), Duration::from_secs(30));
    Study::open(Arc::clone(&s), "acc", Direction::Maximize, one()).unwrap();
    let e = Study::open(Arc::clone(&s), "acc", Direction::Minimize, one())
        .err()
        .unwrap();
    assert!(e.is_bad_input());
    let e = e.to_string();
    assert!(
        e.contains("study `acc`") && e.contains("maximize") && e.contains("minimize"),
        "{e}"
    );
    let e = Study::load(Arc::clone(&s), "nope")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no study `nope`") && e.contains("acc"), "{e}");
    let e = Study::load(s, "acc")
        .unwrap()
        .ask()
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("read-only"), "{e}");
}

#[test]
fn bad_storages_give_clear_errors() {
    let e = storage::open("sqlite:////no/such/folder/s.db")
        .err()
        .unwrap();
    assert!(e.is_bad_input());
    assert!(
        e.to_string()
            .contains("folder /no/such/folder does not exist"),
        "{e}"
    );
    let e = storage::open("mysql://u@h/db").err().unwrap().to_string();
    assert!(e.contains("unknown scheme `mysql`"), "{e}");
    // Nothing listens on port 1.
    let e = storage::open("postgresql://u:secret@127.0.0.1:1/db")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("cannot connect to PostgreSQL") && e.contains("127.0.0.1:1"),
        "{e}"
    );
    assert!(!e.contains("secret"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let e = storage::open(&format!("sqlite:///{}", dir.path().display()))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("is a folder"), "{e}");
    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "not a database at all, just some text that is long enough",
    )
    .unwrap();
    let e = storage::open(&format!("sqlite:///{}", text.display()))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("notes.txt"), "{e}");

    // A SQLite file of another program, and an Optuna file of an older revision.
    let other = dir.path().join("other.db");
    rusqlite_exec(&other, "CREATE TABLE studies (id INTEGER)");
    let e = storage::open(&format!("sqlite:///{}", other.display()))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not an Optuna study database"), "{e}");
    let old = dir.path().join("old.db");
    rusqlite_exec(
        &old,
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL); \
         INSERT INTO alembic_version VALUES ('v2.6.0.a')",
    );
    let e = storage::open(&format!("sqlite:///{}", old.display()))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("v2.6.0.a") && e.contains("optuna storage upgrade"),
        "{e}"
    );
}

/// Writes a SQLite file with the given SQL, through Python (the tests do not link SQLite
/// themselves).
fn rusqlite_exec(path: &std::path::Path, sql: &str) {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()",
        ])
        .arg(path)
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
