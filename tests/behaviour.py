"""Every behaviour docs/usage.md documents, and the tests that prove it.

One entry per option and per exit code of each command, and per Django common option: the
tests that run the command as a process, against real brokers and real ``celery worker``
processes, and fail when the behaviour goes (the exit code *and* its effect: consumers
restored or untouched, the drain open or closed, the sentence). Signals are exits 129, 130
and 143 of ``prepare_deploy``.

``tests/system/test_docs.py`` keeps this table honest: a test fails when docs/usage.md
gains an option or an exit code without an entry here, when an entry is no longer
documented, or when an entry names a test that does not exist.
"""

from __future__ import annotations

GATE = "tests/integration/test_gate.py"
CONTRACT = "tests/integration/test_contract.py"
CI = "tests/integration/test_ci_outputs.py"
FAULTS = "tests/integration/test_faults.py"
FAILURES = "tests/integration/test_gate_failures.py"
LEASE = "tests/integration/test_lease.py"
OPTIONS = "tests/integration/test_options.py"
RESUME = "tests/integration/test_resume.py"
SILENT = "tests/integration/test_silent_workers.py"
RULES = "tests/integration/test_drain_rules.py"
LAYOUT = "tests/integration/test_real_layout.py"

BEHAVIOUR: dict[str, tuple[str, ...]] = {
    # -- prepare_deploy: options ------------------------------------------------------
    "prepare_deploy --timeout": (
        f"{GATE}::test_running_early_ack_task_blocks_and_every_queue_is_restored",
        f"{CONTRACT}::test_a_bad_option_is_exit_2_with_one_json_object",
    ),
    "prepare_deploy --interval": (
        f"{GATE}::test_between_two_polls_the_gate_watches_its_blockers",
        f"{GATE}::test_short_blocker_that_ends_during_the_wait_clears_soon_after",
        f"{OPTIONS}::test_an_interval_longer_than_the_timeout_touches_nothing",
        f"{RULES}::test_a_drained_worker_holds_its_lease_for_three_intervals_at_least_a_minute",
    ),
    "prepare_deploy --hold": (
        f"{LEASE}::test_a_clear_verdict_holds_the_drain_until_the_hold_runs_out",
        f"{LEASE}::test_the_hold_runs_out_on_every_broker",
    ),
    "prepare_deploy --json": (
        f"{CONTRACT}::test_a_bad_option_is_exit_2_with_one_json_object",
        f"{CONTRACT}::test_an_unreachable_broker_is_exit_3_with_one_json_object",
        f"{CONTRACT}::test_a_second_gate_on_the_same_workers_is_exit_4_with_one_json_object",
        f"{CONTRACT}::test_a_stop_signal_gives_one_json_report",
    ),
    "prepare_deploy --dry-run": (
        f"{CONTRACT}::test_dry_run_says_clear_or_blocked_and_cancels_nothing",
        f"{GATE}::test_dry_run_cancels_nothing",
        f"{RULES}::test_every_gate_syncs_the_task_registry_first_and_a_dry_run_never",
    ),
    "prepare_deploy --show-args": (f"{GATE}::test_show_args_shows_bounded_task_arguments",),
    "prepare_deploy --allow-no-workers": (
        f"{CONTRACT}::test_no_worker_on_the_wrong_broker_after_a_run_that_drained_workers_is_exit_2",
        f"{SILENT}::test_prestop_drain_of_a_busy_pod_never_clears",
    ),
    "prepare_deploy --worker": (
        f"{CI}::test_a_selective_drain_by_worker_leaves_the_others_alone",
        f"{CI}::test_worker_and_queue_repeat_and_a_worker_must_match_both",
        f"{CI}::test_no_worker_in_scope_is_exit_2",
    ),
    "prepare_deploy --queue": (
        f"{CI}::test_a_selective_drain_by_queue_and_two_at_once",
        f"{CI}::test_worker_and_queue_repeat_and_a_worker_must_match_both",
        f"{OPTIONS}::test_a_queue_no_worker_consumes_is_exit_2_and_touches_nothing",
    ),
    "prepare_deploy --fail-fast": (
        f"{CI}::test_fail_fast_gives_up_on_a_blocker_that_cannot_end_in_time",
    ),
    "prepare_deploy --report": (
        f"{CI}::test_a_clear_gate_as_a_ci_step",
        f"{CI}::test_a_blocked_gate_as_a_ci_step",
        f"{FAILURES}::test_report_file_is_written_on_exit_3",
        f"{FAILURES}::test_report_file_is_written_on_exit_4_and_on_a_signal",
        f"{FAILURES}::test_broker_back_only_for_the_restore_restores_and_exits_6",
    ),
    # -- prepare_deploy: exit codes ---------------------------------------------------
    "prepare_deploy exit 0": (
        f"{GATE}::test_idle_cluster_clears_and_leaves_consumers_cancelled",
        f"{CONTRACT}::test_a_database_with_no_earlier_run_clears_with_no_worker",
    ),
    "prepare_deploy exit 1": (
        f"{GATE}::test_running_early_ack_task_blocks_and_every_queue_is_restored",
        f"{CI}::test_fail_fast_gives_up_on_a_blocker_that_cannot_end_in_time",
        f"{CONTRACT}::test_dry_run_says_clear_or_blocked_and_cancels_nothing",
    ),
    "prepare_deploy exit 2": (
        f"{CONTRACT}::test_a_bad_option_is_exit_2_with_one_json_object",
        f"{CONTRACT}::test_bad_settings_are_exit_2_with_one_sentence",
        f"{CONTRACT}::test_a_celery_app_that_cannot_be_imported_is_exit_2",
        f"{OPTIONS}::test_a_task_module_that_fails_to_import_stops_the_gate_with_exit_2",
        f"{CONTRACT}::test_a_broker_scheme_no_transport_knows_is_exit_2",
        f"{CONTRACT}::test_the_redis_transport_without_its_library_is_exit_2",
        f"{CONTRACT}::test_a_database_that_cannot_be_used_is_exit_2",
        f"{FAULTS}::test_two_workers_with_one_node_name_are_a_configuration_error",
        f"{CONTRACT}::test_no_worker_on_the_wrong_broker_after_a_run_that_drained_workers_is_exit_2",
        f"{CI}::test_no_worker_in_scope_is_exit_2",
        f"{OPTIONS}::test_a_queue_no_worker_consumes_is_exit_2_and_touches_nothing",
        f"{OPTIONS}::test_an_interval_longer_than_the_timeout_touches_nothing",
    ),
    "prepare_deploy exit 3": (
        f"{GATE}::test_broker_unreachable_exits_3_quickly_without_traceback",
        f"{CONTRACT}::test_a_login_the_broker_refuses_is_exit_3",
    ),
    "prepare_deploy exit 4": (
        f"{GATE}::test_second_concurrent_gate_exits_4_and_says_how_to_recover",
        f"{FAULTS}::test_gate_killed_at_any_point_leaves_a_record_that_resume_restores",
    ),
    "prepare_deploy exit 5": (
        f"{GATE}::test_worker_that_stops_answering_blocks_and_restore_failure_exits_5",
        f"{FAULTS}::test_broker_away_past_the_deadline_exits_5_and_resume_restores",
    ),
    "prepare_deploy exit 6": (
        f"{FAILURES}::test_broker_back_only_for_the_restore_restores_and_exits_6",
        f"{FAILURES}::test_database_lost_mid_drain_restores_first_and_exits_6",
        f"{CONTRACT}::test_an_unexpected_error_restores_first_logs_the_traceback_and_exits_6",
    ),
    "prepare_deploy exit 129": (
        f"{CONTRACT}::test_sighup_from_a_terminal_that_went_away_restores_and_exits_129",
    ),
    "prepare_deploy exit 130": (
        f"{GATE}::test_signal_mid_drain_restores_and_exits_128_plus_signal",
        f"{FAILURES}::test_a_second_ctrl_c_does_not_cut_the_restore_short",
    ),
    "prepare_deploy exit 143": (
        f"{GATE}::test_signal_mid_drain_restores_and_exits_128_plus_signal",
        f"{FAILURES}::test_sigterm_during_a_blocked_verdicts_restore_lets_it_end_and_exits_1",
    ),
    # -- resume_consumers -------------------------------------------------------------
    "resume_consumers --run": (
        f"{RESUME}::test_run_restores_only_that_run_of_two_open_drains",
        f"{CONTRACT}::test_resume_run_n_says_what_it_restores",
    ),
    "resume_consumers --ignore-missing": (
        f"{RESUME}::test_a_worker_that_does_not_answer_is_exit_5_until_ignore_missing",
        f"{FAULTS}::test_worker_killed_mid_drain_is_reported_with_its_tasks",
    ),
    "resume_consumers exit 0": (
        f"{GATE}::test_resume_consumers_after_a_killed_gate",
        f"{CONTRACT}::test_resume_with_no_open_drain_restores_nothing_already_restored",
    ),
    "resume_consumers exit 2": (
        f"{RESUME}::test_a_run_that_does_not_exist_is_exit_2_and_leaves_the_open_drain",
        f"{CONTRACT}::test_bad_settings_are_exit_2_with_one_sentence",
        f"{CONTRACT}::test_resume_refuses_a_run_recorded_on_another_broker",
    ),
    "resume_consumers exit 3": (
        f"{RESUME}::test_a_broker_out_of_reach_is_exit_3_and_resume_restores_once_it_is_back",
        f"{CONTRACT}::test_a_login_the_broker_refuses_is_exit_3",
    ),
    "resume_consumers exit 4": (
        f"{RESUME}::test_a_gate_still_running_is_exit_4_and_it_restores_when_stopped",
    ),
    "resume_consumers exit 5": (
        f"{RESUME}::test_a_worker_that_does_not_answer_is_exit_5_until_ignore_missing",
    ),
    "resume_consumers exit 6": (
        f"{RESUME}::test_an_unexpected_error_is_exit_6_logged_with_its_traceback",
    ),
    # -- sync_task_registry -----------------------------------------------------------
    "sync_task_registry exit 0": (
        f"{LAYOUT}::test_the_admin_pages_show_the_tasks_with_their_global_limit",
        f"{RULES}::test_every_gate_syncs_the_task_registry_first_and_a_dry_run_never",
    ),
    "sync_task_registry exit 2": (
        f"{OPTIONS}::test_a_task_module_that_fails_to_import_is_exit_2_for_sync_task_registry",
        f"{OPTIONS}::test_traceback_shows_the_traceback_of_a_command_error",
        f"{CONTRACT}::test_a_database_that_cannot_be_used_is_exit_2",
    ),
    # -- Django's common options, for every command -----------------------------------
    "common --help": (f"{OPTIONS}::test_h_and_help_print_the_usage_and_every_documented_option",),
    "common --version": (f"{OPTIONS}::test_version_prints_djangos_version_and_touches_nothing",),
    "common --verbosity": (
        f"{OPTIONS}::test_verbosity_changes_neither_the_verdict_nor_the_output",
    ),
    "common --settings": (f"{OPTIONS}::test_settings_is_read_instead_of_django_settings_module",),
    "common --pythonpath": (
        f"{OPTIONS}::test_pythonpath_finds_a_settings_module_outside_the_project",
    ),
    "common --traceback": (
        f"{OPTIONS}::test_traceback_shows_the_traceback_of_a_command_error",
        f"{OPTIONS}::test_traceback_leaves_the_gates_exit_code_and_sentence_alone",
    ),
    "common --no-color": (
        f"{OPTIONS}::test_an_error_on_a_terminal_is_red_and_no_color_takes_the_colour_out",
        f"{OPTIONS}::test_no_color_takes_the_colour_out_of_the_live_view",
    ),
    "common --force-color": (f"{OPTIONS}::test_force_color_leaves_an_error_in_a_pipe_plain",),
}
