"""``nomad volume status`` and ``nomad plugin status`` against a real -dev agent, which has neither CSI
volumes and plugins nor dynamic host volumes: Nomad's output for that case, streams and exit codes."""

from __future__ import annotations

from tests.test_cli_jobs import nomad
from tests.test_http_jobs import dev  # noqa: F401


def test_volume_status_lists_both_kinds_empty_as_nomads(dev):  # noqa: F811
    r = nomad(dev, "volume", "status")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["Dynamic Host Volumes", "", "Container Storage Interface"]
    assert r.stderr.splitlines() == ["No dynamic host volumes", "No CSI volumes"]
    csi = nomad(dev, "volume", "status", "-type", "csi")
    assert (csi.returncode, csi.stdout.strip(), csi.stderr.strip()) == (0, "Container Storage Interface",
                                                                        "No CSI volumes")
    quiet = nomad(dev, "volume", "status", "-type", "host", "-json")
    assert (quiet.returncode, quiet.stdout.strip(), quiet.stderr.strip()) == \
        (0, "", "No dynamic host volumes")


def test_volume_status_of_an_id_and_bad_arguments_are_errors(dev):  # noqa: F811
    r = nomad(dev, "volume", "status", "vol1")
    assert r.returncode == 1
    assert r.stderr.splitlines() == ['Error listing host volumes: no volumes with prefix or ID "vol1" found',
                                     'Error listing CSI volumes: no volumes with prefix or ID "vol1" found']
    for args, why in ((["-type", "nfs"], 'No such volume type "nfs"'),
                      (["-type", "csi", "-node", "x"],
                       "-node and -node-pool can only be used with -type host"),
                      (["a", "b"], "This command takes either no arguments or one: <id>")):
        bad = nomad(dev, "volume", "status", *args)
        assert bad.returncode == 1 and why in bad.stderr, (args, bad.stderr)


def test_plugin_status_has_no_csi_plugins(dev):  # noqa: F811
    r = nomad(dev, "plugin", "status")
    assert (r.returncode, r.stdout.strip(), r.stderr.strip()) == (0, "Container Storage Interface",
                                                                  "No CSI plugins")
    one = nomad(dev, "plugin", "status", "ebs")
    assert one.returncode == 1 and 'no plugins with prefix or ID "ebs" found' in one.stderr
    other = nomad(dev, "plugin", "status", "-type", "device")
    assert other.returncode == 1 and "Unsupported plugin type: device" in other.stderr
