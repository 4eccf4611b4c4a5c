# A Nomad job file in HCL, as operators write them (tests/test_hcl_job.py, tests/test_cli_jobs.py).
job "example" {
  datacenters = ["dc1"]
  type = "service"
  priority = 60
  meta {
    owner = "ops"
  }
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }
  group "cache" {
    count = 1
    update {
      min_healthy_time = "0s" # healthy once running: `nomad job run` waits for the deployment
    }
    restart {
      attempts = 2
      interval = "30m"
      delay    = "15s"
      mode     = "fail"
    }
    task "redis" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["60"]
      }
      env {
        FOO = "bar"
      }
      kill_timeout = "10s"
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
