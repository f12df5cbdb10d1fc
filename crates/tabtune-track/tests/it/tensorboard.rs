//! Event files read back by the real `tensorboard` package (`EventAccumulator`): scalars per
//! step, and the HParams plugin's session summaries with the run's hyperparameters.

use std::process::Command;

use tabtune_track::{RunSpec, RunStatus, TensorBoard, Tracker};

const READER: &str = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
out = {"scalars": {}, "hparams": {}, "group": None, "status": None}
for tag in acc.Tags()["scalars"]:
    out["scalars"][tag] = [[e.step, e.value] for e in acc.Scalars(tag)]
content = acc.PluginTagToContent("hparams")
start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
for name, value in start.session_start_info.hparams.items():
    kind = value.WhichOneof("kind")
    out["hparams"][name] = getattr(value, kind)
out["group"] = start.session_start_info.group_name
end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"])
out["status"] = end.session_end_info.status
print(json.dumps(out))
"#;

#[test]
fn tensorboard_reads_scalars_and_hparams() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tb = TensorBoard::new(tmp.path());
    let spec = RunSpec::new("study", "trial-0")
        .param("learning_rate", 0.05)
        .param("max_depth", 6)
        .param("growth", "leaf")
        .param("early_stopping", true);
    let mut run = tb.start_run(&spec).expect("start");
    for step in 0..10u64 {
        run.log_metrics(
            step,
            &[
                ("valid/accuracy", 0.5 + step as f64 / 100.0),
                ("train/loss", 1.0 / (step + 1) as f64),
            ],
        )
        .expect("log");
    }
    run.end(RunStatus::Finished).expect("end");

    let python = tabtune_test::python_env("mlflow");
    let out = Command::new(python)
        .arg("-c")
        .arg(READER)
        .arg(tmp.path().join("study/trial-0"))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let accuracy = read["scalars"]["valid/accuracy"]
        .as_array()
        .expect("scalars");
    assert_eq!(accuracy.len(), 10);
    for (i, point) in accuracy.iter().enumerate() {
        assert_eq!(point[0], i as u64);
        let expected = (0.5 + i as f64 / 100.0) as f32;
        assert!((point[1].as_f64().expect("value") - f64::from(expected)).abs() < 1e-7);
    }
    assert_eq!(
        read["scalars"]["train/loss"]
            .as_array()
            .expect("loss")
            .len(),
        10
    );
    assert_eq!(read["hparams"]["learning_rate"], 0.05);
    assert_eq!(read["hparams"]["max_depth"], 6.0);
    assert_eq!(read["hparams"]["growth"], "leaf");
    assert_eq!(read["hparams"]["early_stopping"], true);
    assert_eq!(read["group"], "study");
    assert_eq!(read["status"], 1, "STATUS_SUCCESS");
}
