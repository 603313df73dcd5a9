"""The flags featctl hands Terraform, pinned without running the binary."""

import pytest
from python_terraform import IsFlagged, IsNotFlagged, Terraform

from featctl.provision.terraform import build_args, summarize_error


def command_line(command, **kwargs):
    _, opts = build_args(command, **kwargs)
    tf = Terraform(working_dir="/nonexistent")
    # python-terraform turns the apply/destroy shortcuts into options itself.
    if command == "apply":
        opts = dict(opts)
        opts["auto-approve"] = opts.pop("skip_plan")
    return tf.generate_cmd_string(command, **opts)


def test_destroy_never_passes_force():
    cmd = command_line("destroy", var_file="v.json")
    assert "-force" not in cmd
    assert "-auto-approve" in cmd
    assert "-var-file=v.json" in cmd
    assert "-input=false" in cmd


def test_apply_auto_approves_and_replaces():
    cmd = command_line("apply", var_file="v.json", replace=["terraform_data.host"])
    assert "-auto-approve=true" in cmd
    assert "-replace=terraform_data.host" in cmd
    assert "-lock-timeout=0s" in cmd
    assert not any(c.startswith("-var=") for c in cmd)


def test_apply_without_replace_has_no_replace_flag():
    cmd = command_line("apply", var_file="v.json")
    assert not any(c.startswith("-replace") for c in cmd)


@pytest.mark.parametrize(("detailed", "flag"), [(True, IsFlagged), (False, IsNotFlagged)])
def test_plan_detailed_exitcode(detailed, flag):
    _, opts = build_args("plan", var_file="v.json", detailed_exitcode=detailed)
    assert opts["detailed_exitcode"] is flag


def test_variables_never_go_through_a_temp_var_dict():
    for command in ("apply", "destroy", "plan"):
        _, opts = build_args(command, var_file="v.json")
        assert opts["var"] is None


def test_summarize_error_takes_the_first_error_and_its_detail():
    stderr = """
There are some problems with the CLI configuration:
│ Warning: Unable to open CLI configuration file
╷
│ Error: local-exec provisioner error
│
│   with terraform_data.host,
│   on main.tf line 33, in resource "terraform_data" "host":
│
│ Error running command: exit status 1. Output: sshd did not start
╵
"""
    assert summarize_error(stderr) == "local-exec provisioner error: sshd did not start"


def test_summarize_error_without_error_line():
    assert summarize_error("something odd\n") == "something odd"


def test_plan_writes_a_plan_file_for_show_json():
    cmd = command_line("plan", var_file="v.json", detailed_exitcode=True, out=".featctl.tfplan")
    assert "-detailed-exitcode" in cmd and "-out=.featctl.tfplan" in cmd


def test_plan_changes_from_show_json():
    import json

    from featctl.provision.terraform import plan_changes

    show = {
        "resource_changes": [
            {"address": "terraform_data.host", "change": {"actions": ["no-op"]}},
            {"address": "terraform_data.sshd", "change": {"actions": ["delete", "create"]}},
            {"address": "data.x.y", "change": {"actions": ["read"]}},
        ]
    }
    assert plan_changes(json.dumps(show)) == [{"address": "terraform_data.sshd", "actions": ["delete", "create"]}]
    assert plan_changes(json.dumps({})) == []


def test_summarize_error_skips_source_references():
    stderr = """
Error: local-exec provisioner error

  with terraform_data.sshd,
  on main.tf line 58, in resource "terraform_data" "sshd":
  58:   provisioner "local-exec" {

Error running command
'/w/start-sshd.sh': exit status 1.
Output: featctl local target: OpenSSH server not found at /nonexistent/sshd
(install the openssh-server package)
"""
    assert summarize_error(stderr) == (
        "local-exec provisioner error: featctl local target: OpenSSH server not found at /nonexistent/sshd "
        "(install the openssh-server package)"
    )
    other = """
Error: Invalid value for variable

  on featctl.auto.tfvars.json line 3:
   3:   "port": 80,

port must be between 1024 and 65535.
"""
    assert summarize_error(other) == "Invalid value for variable: port must be between 1024 and 65535."
