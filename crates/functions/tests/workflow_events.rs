//! The workflow-worker binary over the SQS fixture `tests/events/sqs-workflow-batch.json`, on
//! the embedded store, through a fake Lambda Runtime API (`common`).

mod common;

use common::Function;
use plunk_domain::workflow::execution::{Execution, ExecutionStatus, StepStatus};
use plunk_domain::workflow::{
    Position, Step, StepType, Transition, TriggerConfig, TriggerType, Workflow,
};
use plunk_domain::Timestamp;
use plunk_store::repo::workflows::{GraphChange, WorkflowRecord};
use serde_json::{json, Map, Value};
use uuid::Uuid;

fn step(workflow: Uuid, step_type: StepType, config: Value) -> Step {
    let now = Timestamp::now();
    Step {
        id: Uuid::now_v7(),
        workflow_id: workflow,
        step_type,
        name: step_type.as_str().into(),
        position: Position::default(),
        config,
        template_id: None,
        created_at: now,
        updated_at: now,
    }
}

#[tokio::test]
async fn the_workflow_worker_runs_an_execution_once_however_often_its_message_comes() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::store_in(dir.path());
    let (project, _) = common::project(&store).await;
    let contact = store
        .contacts()
        .upsert(
            project.id,
            &plunk_domain::EmailAddress::parse("ada@example.org").unwrap(),
            None,
            &Default::default(),
            plunk_domain::event::SubscriptionSource::Api,
        )
        .await
        .unwrap()
        .contact;
    let now = Timestamp::now();
    let id = Uuid::now_v7();
    let record = WorkflowRecord {
        workflow: Workflow {
            id,
            name: "Tag".into(),
            description: None,
            enabled: true,
            trigger_type: TriggerType::Event,
            trigger_config: Some(TriggerConfig {
                event_name: "signed_up".into(),
            }),
            allow_reentry: false,
            created_at: now,
            updated_at: now,
        },
        step_count: 3,
        active_executions: 0,
        wait_event_names: Vec::new(),
    };
    let trigger = step(id, StepType::Trigger, json!({}));
    let tag = step(
        id,
        StepType::UpdateContact,
        json!({"updates": {"stage": "tagged"}}),
    );
    let exit = step(id, StepType::Exit, json!({"reason": "done"}));
    let link = |from: &Step, to: &Step| Transition {
        id: Uuid::now_v7(),
        workflow_id: id,
        from_step_id: from.id,
        to_step_id: to.id,
        condition: None,
        wait_outcome: None,
        priority: 0,
        created_at: now,
    };
    store
        .workflows()
        .create(
            project.id,
            &record,
            &[trigger.clone(), tag.clone(), exit.clone()],
        )
        .await
        .unwrap();
    let (stored, version) = store
        .workflows()
        .get(project.id, id)
        .await
        .unwrap()
        .unwrap();
    store
        .workflows()
        .save(
            project.id,
            &stored,
            &stored,
            version,
            None,
            &GraphChange {
                put_transitions: vec![link(&trigger, &tag), link(&tag, &exit)],
                ..GraphChange::default()
            },
        )
        .await
        .unwrap();
    let execution = Execution::start(Uuid::now_v7(), id, contact.id, trigger.id, Map::new(), now);
    store
        .executions()
        .start(project.id, &execution, false)
        .await
        .unwrap()
        .unwrap();

    let job = common::fixture(
        "sqs-workflow-batch.json",
        &[
            ("__PROJECT_ID__", &project.id.to_string()),
            ("__WORKFLOW_ID__", &id.to_string()),
            ("__EXECUTION_ID__", &execution.id.to_string()),
        ],
    );
    let mut function = Function::start(env!("CARGO_BIN_EXE_workflow-worker"), dir.path()).await;
    for _ in 0..2 {
        let response = function.invoke(job.clone()).await;
        assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    }

    let (after, _) = store
        .executions()
        .get(project.id, id, execution.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.status, ExecutionStatus::Exited);
    assert_eq!(after.exit_reason.as_deref(), Some("done"));
    let steps = store
        .executions()
        .steps(project.id, execution.id)
        .await
        .unwrap();
    let kinds: Vec<(StepType, StepStatus)> =
        steps.iter().map(|s| (s.step_type, s.status)).collect();
    assert_eq!(
        kinds,
        vec![
            (StepType::Trigger, StepStatus::Completed),
            (StepType::UpdateContact, StepStatus::Completed),
            (StepType::Exit, StepStatus::Completed),
        ],
        "each step recorded once, the second message changed nothing"
    );
    let contact = store
        .contacts()
        .get(project.id, contact.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contact.data["stage"], "tagged");
    assert_eq!(
        store
            .executions()
            .active_count(project.id, id)
            .await
            .unwrap(),
        0
    );
}
