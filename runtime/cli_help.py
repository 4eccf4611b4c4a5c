"""``nomad <command> -h``: help for every CLI command and command group, as Nomad's CLI gives it.

Nomad's CLI (hashicorp/cli, as ``main.go`` sets it up) answers:

* ``-h``, ``-help`` or ``--help`` anywhere before a ``--``: the command's help
  (its usage line, what it does, the general options when it talks to an
  agent, its own options; a command with subcommands also lists them), on
  stdout, exit 0.  Without a command: the top-level list, exit 0.
* a group alone (``nomad alloc``), or a group and a word that is none of its
  subcommands (``nomad alloc bogus``): the group's help with its
  "Subcommands:", on stdout, exit 1 (the group's Run answers RunResultHelp).
* no command, or an unknown one: the top-level list ("Common commands:" then
  "Other commands:"), on stdout, exit 127.
* a flag before the command (``nomad -verbose job status``): "Invalid flags
  before the subcommand..." and the command's help, exit 1.

The texts are written for this agent: each command lists the options its
handler really accepts (tests/test_cli_help.py checks every one against the
handler's flag parser), in words after Nomad's.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

__all__ = ["GROUPS", "HELP", "command_help", "group_words", "intercept", "top_usage"]

HELP_FLAGS = ("-h", "-help", "--help")
WIDTH = 78  # help text wrapped as Nomad's hand-wrapped help (under 80 columns)

EXIT_HELP_ASKED = 0  # hashicorp/cli: -h prints the help and succeeds
EXIT_GROUP_HELP = 1  # a group's Run returns RunResultHelp: its help, exit 1
EXIT_UNKNOWN = 127  # hashicorp/cli: no command, or one that does not exist


@dataclass(frozen=True, slots=True)
class Help:
    usage: str  # after "nomad <words> "
    synopsis: str  # one line, in the parent's list
    description: str
    options: tuple[tuple[str, str], ...] = ()  # (flag head, e.g. "-deadline <duration>", text)
    general: bool = True  # talks to an agent: the general options apply


@dataclass(frozen=True, slots=True)
class Group:
    synopsis: str
    description: str


# Options many commands share, worded once.
_COMMON = {
    "-json": "Print the result as JSON, as the HTTP API answers it.",
    "-t <template>": "Format the output with a Go template (the -json output is its input).",
    "-verbose": "Show full identifiers and more detail.",
    "-detach": "Return right after the request is accepted, printing the evaluation ID, instead of "
               "monitoring the evaluation until it completes.",
    "-yes": "Answer yes to the confirmation prompt.",
    "-check-index <index>": "Only write when the object's current modify index is this one "
                            "(check-and-set); 0 means it must not exist yet.",
}

HELP: dict[tuple[str, ...], Help] = {}
GROUPS: dict[tuple[str, ...], Group] = {}


def _c(words: str, usage: str, synopsis: str, description: str, *options: str | tuple[str, str],
       general: bool = True) -> None:
    """Declare one command's help; an option given as a bare head takes its text from _COMMON."""
    opts = tuple(o if isinstance(o, tuple) else (o, _COMMON[o]) for o in options)
    HELP[tuple(words.split())] = Help(usage, synopsis, description, opts, general)


def _g(words: str, synopsis: str, description: str) -> None:
    GROUPS[tuple(words.split())] = Group(synopsis, description)


_JSON_T = ("-json", "-t <template>")
# A paged list (Nomad's -filter, -per-page, -page-token), of the things *what* names.
def _paged(what: str) -> tuple[tuple[str, str], ...]:
    return (("-filter <expression>", f"Only the {what} this filter expression matches."),
            ("-per-page <n>", "How many to list at most; the command line for the next page follows."),
            ("-page-token <token>", "Where a page starts: the token a previous page ended with."))


_MONITOR = ("-detach", "-verbose")
_VAR_OPTS = (("-var <key=value>", "An HCL input variable for the job file; may be given more than once."),
             ("-var-file <path>", "A file of HCL input variables (key = value lines); may be given more "
                                  "than once, later files winning."),
             ("-json", "The job file is JSON (as \"nomad job inspect\" or \"nomad job run -output\" "
                       "print it), whatever its name."),
             ("-hcl2-strict", "Whether an error is produced from the HCL2 parser where a variable has been "
              "supplied which is not defined within the root variables. Defaults to true."))

# ---------------------------------------------------------------- top-level commands

_c("agent-info", "[options]", "Show the local agent's status information",
   "Prints the agent's runtime figures, section by section, from /v1/agent/self.", *_JSON_T)
_c("monitor", "[options]", "Stream an agent's log lines",
   "Streams the log lines an agent writes, as it writes them, until interrupted.",
   ("-log-level <level>", "The least severe level shown: trace, debug, info, warn or error. "
                          "Defaults to info."),
   ("-node-id <node>", "Stream the logs of this client node instead of the agent asked."),
   ("-server-id <server>", "Stream the logs of this server (a name, or \"leader\")."),
   ("-json", "Ask for the log lines as JSON objects."))
_c("monitor export", "[options]", "Export an agent's log file or journal",
   "Prints what an agent has logged: its log file (-on-disk, which needs the agent's log_file), or its "
   "systemd unit's journal (-service-name, over -logs-since; -follow keeps streaming).",
   ("-on-disk", "Export the agent's log file as it is now."),
   ("-service-name <name>", "The agent's systemd unit (its name must contain \"nomad\")."),
   ("-logs-since <duration>", "How far back the journal is read; 72h by default."),
   ("-follow", "Keep streaming the journal until interrupted (not with -on-disk)."),
   ("-node-id <node>", "Export the logs of this client node instead of the agent asked."),
   ("-server-id <server>", "Export the logs of this server (a name, or \"leader\")."))
_c("status", "[options] [<prefix>]", "Show the status of a job, node, allocation or evaluation",
   "Without an argument, lists the jobs. With an identifier or prefix, finds what it names (job, "
   "node, allocation or evaluation) and shows that object's status.",
   "-verbose", ("-filter <expression>", "List only the jobs that match this filter expression."))
_c("status leader", "[options]", "Show the address of the cluster's Raft leader",
   "Prints the RPC address of the current leader of the region's servers.")
_c("fmt", "[options] [<path>...]", "Rewrite Nomad config and job files to canonical format",
   "Formats Nomad agent configuration and job files (.nomad and .hcl) in the canonical HCL layout. A "
   "directory's files are formatted, its subdirectories' too with -recursive; no path is the current "
   "directory; a single dash (-) reads standard input and prints the result. A file that does not "
   "parse is reported and left as it is (exit 1).",
   ("-check", "Rewrite nothing; exit 1 when a file is not in canonical format. Overrides -write."),
   ("-list", "List the files whose formatting changes. Defaults to -list=true."),
   ("-recursive", "Process the files of subdirectories too. By default only the given (or current) "
                  "directory's are."),
   ("-write", "Overwrite the input files. Defaults to -write=true; ignored for standard input. With "
              "-list=false and -write=false the formatted text is printed."), general=False)
_c("version", "", "Show this CLI's version", "Prints the version of this nomad command.", general=False)

# ---------------------------------------------------------------- acl

_g("acl", "Manage ACL policies, roles and tokens",
   "Groups the commands that bootstrap the ACL system and manage its policies, roles and tokens, and "
   "the auth methods and binding rules of SSO login.")
_g("acl auth-method", "Manage ACL auth methods",
   "Create, read, list, update and delete ACL auth methods (SSO login; type JWT here).")
_g("acl binding-rule", "Manage ACL binding rules",
   "Create, read, list, update and delete the binding rules that map a login's claims to ACL roles, "
   "policies or a management token.")
_AUTH_METHOD_OPTS = (
    ("-max-token-ttl <duration>", "How long the tokens this method creates are valid (e.g. 1h); between "
                                  "the server's acl.token_min_expiration_ttl and token_max_expiration_ttl."),
    ("-token-locality <locality>", "The kind of token the method creates: \"local\" or \"global\"."),
    ("-token-name-format <format>", "The name of the tokens it creates, lightly templated with HIL "
                                    "${...} syntax; defaults to '${auth_method_type}-${auth_method_name}'."),
    ("-default", "Make this the default method, used by nomad login without -method."),
    ("-config <json>", "The method's configuration as JSON; '@path' reads it from a file, '-' from "
                       "standard input."))
_c("acl auth-method create", "[options]", "Create a new ACL auth method",
   "Creates an ACL auth method. Use requires a management token.",
   ("-name <name>", "The method's name (1-128 letters, digits and dashes); required."),
   ("-type <type>", "The method's type: 'JWT' (the agent refuses 'OIDC', whose login is a browser flow)."),
   *_AUTH_METHOD_OPTS, *_JSON_T)
_c("acl auth-method update", "[options] <acl_auth_method_name>", "Update an existing ACL auth method",
   "Updates an ACL auth method; what no flag names stays as it is. Use requires a management token.",
   ("-type <type>", "The method's type: 'JWT' or 'OIDC'."), *_AUTH_METHOD_OPTS, *_JSON_T)
_c("acl auth-method delete", "[options] <acl_auth_method_name>", "Delete an existing ACL auth method",
   "Deletes an ACL auth method. Use requires a management token.")
_c("acl auth-method info", "[options] <acl_auth_method_name>",
   "Fetch information on an existing ACL auth method",
   "Shows an ACL auth method and its configuration. Requires a management token.", *_JSON_T)
_c("acl auth-method list", "[options]", "List ACL auth methods",
   "Lists the ACL auth methods (anyone may).", *_JSON_T)
_BINDING_RULE_OPTS = (
    ("-description <text>", "A free form description of the rule, at most 256 characters."),
    ("-selector <expression>", "A go-bexpr expression over the login's mapped claims (value.<name>, "
                               "list.<name>) that must match for the rule to apply; none matches every "
                               "login."),
    ("-bind-type <type>", "How the rule applies: \"role\", \"policy\" or \"management\"."),
    ("-bind-name <name>", "The role or policy to bind, lightly templated with HIL ${value.<name>} "
                          "syntax; empty for the management bind type."))
_c("acl binding-rule create", "[options]", "Create a new ACL binding rule",
   "Creates an ACL binding rule. Use requires a management token.",
   ("-auth-method <name>", "The ACL auth method the rule belongs to; required."), *_BINDING_RULE_OPTS,
   *_JSON_T)
_c("acl binding-rule update", "[options] <acl_binding_rule_id>", "Update an existing ACL binding rule",
   "Updates an ACL binding rule; what no flag names stays as it is. Requires a management token.",
   *_BINDING_RULE_OPTS,
   ("-no-merge", "Replace the rule with the flags given (-bind-type required) rather than merging them."),
   *_JSON_T)
_c("acl binding-rule delete", "[options] <acl_binding_rule_id>", "Delete an existing ACL binding rule",
   "Deletes an ACL binding rule. Use requires a management token.")
_c("acl binding-rule info", "[options] <acl_binding_rule_id>",
   "Fetch information on an existing ACL binding rule",
   "Shows an ACL binding rule. Requires a management token.", *_JSON_T)
_c("acl binding-rule list", "[options]", "List ACL binding rules",
   "Lists the ACL binding rules. Requires a management token.", *_JSON_T)
_c("login", "[options]", "Login to Nomad using an auth method",
   "Exchanges a JWT for a newly minted Nomad ACL token with the named auth method (or the default one).",
   ("-method <name>", "The ACL auth method to log in with; optional when the cluster has a default one."),
   ("-type <type>", "Deprecated (Nomad 1.5.2) and ignored, with a warning."),
   ("-login-token <jwt>", "The JWT to exchange for a Nomad ACL token; required for JWT auth methods."),
   ("-oidc-callback-addr <addr>", "The local OIDC callback address (the OIDC flow is not available here)."),
   *_JSON_T)
_g("acl policy", "Manage ACL policies", "Create, read, list and delete ACL policies.")
_g("acl role", "Manage ACL roles", "Create, read, list, update and delete ACL roles.")
_g("acl token", "Manage ACL tokens", "Create, read, list, update and delete ACL tokens.")
_c("acl bootstrap", "[options] [<path>]", "Create the cluster's first management token",
   "Bootstraps the ACL system: creates the initial management token and prints it. "
   "This works once per cluster. With no argument the servers generate the token's secret; "
   "an operator-generated secret (a UUID) may be given in the file <path>, or on standard "
   "input with \"-\".",
   *_JSON_T)
_c("acl policy apply", "[options] <name> <path>", "Create or update an ACL policy",
   "Writes the policy <name> with the rules in the file <path> (\"-\" reads standard input).",
   ("-description <text>", "A description of the policy."),
   ("-namespace <namespace>", "Attach the policy to the workloads of this namespace."),
   ("-job <job>", "Attach the policy to this job (needs -namespace)."),
   ("-group <group>", "Attach the policy to this task group (needs -job)."),
   ("-task <task>", "Attach the policy to this task (needs -group)."))
_c("acl policy delete", "[options] <name>", "Delete an ACL policy", "Deletes the named ACL policy.")
_c("acl policy info", "[options] <name>", "Show an ACL policy", "Shows the named ACL policy and its rules.")
_c("acl policy list", "[options]", "List the ACL policies", "Lists every ACL policy with its description.",
   *_JSON_T)
_c("acl policy self", "[options]", "List the ACL policies of the token in use",
   "Lists the policies the request's token holds, those of its roles included.", *_JSON_T)
_c("acl role create", "[options]", "Create an ACL role",
   "Creates an ACL role that links one or more ACL policies.",
   ("-name <name>", "The role's name; required."),
   ("-description <text>", "A description of the role."),
   ("-policy <name>", "An ACL policy the role links; may be given more than once."), *_JSON_T)
_c("acl role delete", "[options] <role_id>", "Delete an ACL role", "Deletes the ACL role with this ID.")
_c("acl role info", "[options] <role_id>", "Show an ACL role",
   "Shows an ACL role, found by its ID (or by its name with -by-name).",
   ("-by-name", "Treat the argument as the role's name rather than its ID."), *_JSON_T)
_c("acl role list", "[options]", "List the ACL roles", "Lists every ACL role.", *_JSON_T)
_c("acl role update", "[options] <role_id>", "Update an ACL role",
   "Changes an ACL role's name, description or policies; what is not given stays as it is.",
   ("-name <name>", "The role's new name."),
   ("-description <text>", "The role's new description."),
   ("-policy <name>", "An ACL policy to link; may be given more than once."),
   ("-no-merge", "Replace the role's policies with those given rather than adding to them."), *_JSON_T)
_c("acl token create", "[options]", "Create an ACL token",
   "Creates an ACL token and prints it, its secret ID included.",
   ("-name <name>", "A name for the token."),
   ("-type <type>", "\"client\" (the default) or \"management\"."),
   ("-global", "Replicate the token to every region."),
   ("-policy <name>", "A policy the token holds (client tokens); may be given more than once."),
   ("-role-id <id>", "An ACL role, by ID, the token holds; may be given more than once."),
   ("-role-name <name>", "An ACL role, by name, the token holds; may be given more than once."),
   ("-ttl <duration>", "The token expires after this long (e.g. 1h); never by default."),
   *_JSON_T)
_c("acl token delete", "[options] <accessor_id>", "Delete an ACL token",
   "Deletes the ACL token with this accessor ID.")
_c("acl token info", "[options] <accessor_id>", "Show an ACL token",
   "Shows the ACL token with this accessor ID.")
_c("acl token list", "[options]", "List the ACL tokens", "Lists every ACL token.", *_JSON_T)
_c("acl token self", "[options]", "Show the ACL token in use", "Shows the token the request is made with.")
_c("acl token update", "[options] <accessor_id>", "Update an ACL token",
   "Changes an ACL token's name, type, policies or roles; what is not given stays as it is.",
   ("-name <name>", "The token's new name."),
   ("-type <type>", "\"client\" or \"management\"."),
   ("-policy <name>", "A policy the token holds; may be given more than once."),
   ("-role-id <id>", "An ACL role, by ID, the token holds; may be given more than once."),
   ("-role-name <name>", "An ACL role, by name, the token holds; may be given more than once."))

# ---------------------------------------------------------------- alloc

_g("alloc", "Inspect and manage allocations",
   "Groups the commands that show an allocation's status, read its files and logs, run commands in "
   "it, and signal, restart or stop its tasks.")
_c("alloc checks", "[options] <allocation>", "Show the allocation's service check results",
   "Shows the latest result of each Nomad service check of the allocation.", "-verbose", *_JSON_T)
_c("alloc exec", "[options] <allocation> <command> [<args>...]", "Run a command inside a task",
   "Runs the command in the environment of one of the allocation's tasks, with its standard streams "
   "joined to this terminal.",
   ("-task <task>", "The task to run the command in; needed when the group has more than one."),
   ("-job", "Treat the argument as a job ID and use one of its running allocations, picked at random."),
   ("-group <group>", "With -job: pick among this task group's allocations only."),
   ("-i", "Pass standard input to the command; on by default, -i=false turns it off."),
   ("-t", "Give the command a terminal; on by default when this one is a terminal, -t=false turns it "
          "off."),
   ("-e <char>", "The escape character of a terminal session (default \"~\"); it followed by \".\" "
                 "closes the session. \"none\" turns escapes off."))
_JOB_ACTION = ("Runs an action -- a command the job's task defines in an action block -- inside the task, as "
               "alloc exec runs a command: in a given allocation, or in a running allocation of the group, "
               "picked at random.",
               ("-job <job>", "The job that defines the action (required)."),
               ("-alloc <allocation>", "The allocation to run it in; without it, -group and -task are "
                                       "required and a running allocation of the group is picked."),
               ("-group <group>", "The task group that defines the action."),
               ("-task <task>", "The task that defines the action."),
               ("-i", "Pass standard input to the action; on by default, -i=false turns it off."),
               ("-t", "Give the action a terminal; on by default when this one is a terminal, -t=false "
                      "turns it off."),
               ("-e <char>", "The escape character of a terminal session (default \"~\"); \"none\" turns "
                             "escapes off."))
_c("job action", "[options] <action>", "Run a pre-defined action from a Nomad task", *_JOB_ACTION)
_c("action", "[options] <action>", "Run a pre-defined command from a given context", *_JOB_ACTION)
_c("alloc fs", "[options] <allocation> [<path>]", "Read files in an allocation's directory",
   "Lists a directory or prints a file of the allocation's directory (\"/\", its root, by default), "
   "read from the node that runs it.",
   ("-H", "Show sizes in bytes rather than human-readable units."),
   ("-stat", "Show the file's or directory's own details rather than its contents."),
   ("-tail", "Print the end of the file (with -n or -c; the last 10 lines by default)."),
   ("-n <lines>", "With -tail: how many lines from the end."),
   ("-c <bytes>", "With -tail: how many bytes from the end."),
   ("-f", "Keep printing what is appended to the file, until interrupted."),
   ("-job", "Treat the argument as a job ID and use one of its allocations, picked at random."),
   ("-group <group>", "With -job: pick among this task group's allocations only."), "-verbose")
_c("alloc logs", "[options] <allocation> [<task>]", "Print a task's logs",
   "Prints a task's standard output (or error) log, read from the node that runs the allocation. "
   "The task may be left out when the group has only one.",
   ("-stderr", "Print the standard error log rather than standard output."),
   ("-stdout", "Print the standard output log (the default; with -f, only it is followed)."),
   ("-task <task>", "The task whose logs are printed."),
   ("-tail", "Print the end of the log (with -n or -c; the last 10 lines by default)."),
   ("-n <lines>", "With -tail: how many lines from the end."),
   ("-c <bytes>", "With -tail: how many bytes from the end."),
   ("-f", "Keep printing the log as it is written, until interrupted. With no other flag (but -job and "
          "-task), both logs are followed from their ends: stdout to stdout, stderr to stderr."),
   ("-job", "Treat the argument as a job ID and use one of its allocations, picked at random."),
   ("-group <group>", "With -job: pick among this task group's allocations only."), "-verbose")
_c("alloc restart", "[options] <allocation> [<task>]", "Restart an allocation's tasks",
   "Restarts the running tasks of an allocation, or one of them, in place.",
   ("-task <task>", "Restart only this task."),
   ("-all-tasks", "Restart every task, the finished lifecycle tasks (prestart, poststart) too."),
   "-verbose")
_c("alloc signal", "[options] <allocation> [<task>]", "Send a signal to an allocation's tasks",
   "Sends a signal to the allocation's tasks, or one of them.",
   ("-s <signal>", "The signal to send (e.g. SIGHUP); SIGKILL by default."),
   ("-task <task>", "Signal only this task."), "-verbose")
_c("alloc status", "[options] <allocation>", "Show an allocation's status",
   "Shows an allocation's status, placement, tasks, their events and resource usage.",
   ("-short", "Show only the allocation's summary and its tasks' states."),
   ("-stats", "Show detailed resource usage figures."), "-verbose", *_JSON_T)
_c("alloc stop", "[options] <allocation>", "Stop an allocation and have it rescheduled",
   "Stops the allocation; its job's scheduler places a replacement, elsewhere when it can.",
   ("-no-shutdown-delay", "Ignore the group and task shutdown_delay: kill the tasks without waiting "
                          "after their services are deregistered."),
   *_MONITOR)

# ---------------------------------------------------------------- config

_g("config", "Work with agent configuration files", "Commands that check agent configuration files.")
_c("config validate", "<path> [<path>...]", "Check agent configuration files",
   "Reads the configuration files and directories given, as the agent would, and reports what is "
   "wrong with them. No agent is asked.", general=False)

# ---------------------------------------------------------------- deployment

_g("deployment", "Inspect and manage deployments",
   "Groups the commands that list deployments, show their status, and pause, resume, promote or fail "
   "them.")
_c("deployment fail", "[options] <deployment>", "Fail a deployment",
   "Marks a running deployment failed; with auto_revert the job goes back to its last stable version.",
   *_MONITOR)
_c("deployment list", "[options]", "List the deployments", "Lists every deployment.",
   ("-filter <expression>", "Only the deployments this filter expression matches."), "-verbose", *_JSON_T)
_c("deployment pause", "[options] <deployment>", "Pause a deployment",
   "Pauses a deployment: no more allocations are replaced until it is resumed.", "-verbose")
_c("deployment promote", "[options] <deployment>", "Promote a deployment's canaries",
   "Promotes the canaries of a deployment, all its groups' or those named.",
   ("-group <group>", "Promote only this group's canaries; may be given more than once."), *_MONITOR)
_c("deployment resume", "[options] <deployment>", "Resume a paused deployment",
   "Resumes a paused deployment.", *_MONITOR)
_c("deployment status", "[options] <deployment>", "Show a deployment's status",
   "Shows a deployment's status and each task group's progress.",
   ("-monitor", "Keep showing the deployment's progress until it ends."),
   ("-wait <duration>", "With -monitor: the longest each look at the deployment waits for a change; "
                        "2s by default."), "-verbose", *_JSON_T)

# ---------------------------------------------------------------- eval

_g("eval", "Inspect and manage evaluations",
   "Groups the commands that list evaluations, show their status and delete them.")
_c("eval delete", "[options] [<evaluation>]", "Delete evaluations",
   "Deletes one evaluation by its ID, or every evaluation a filter matches. The eval broker must be "
   "paused first (nomad operator scheduler set-config -pause-eval-broker=true).",
   ("-filter <expression>", "Delete the evaluations this filter expression matches."), "-yes")
_c("eval list", "[options]", "List the evaluations",
   "Lists the evaluations in the order they were created.",
   ("-job <job>", "Only the evaluations of this job."),
   ("-status <status>", "Only the evaluations with this status."),
   ("-filter <expression>", "Only the evaluations this filter expression matches (not with -job or "
                            "-status)."),
   ("-per-page <n>", "How many evaluations to show per page."),
   ("-page-token <token>", "Where the page to show starts: the token the previous page printed."),
   "-verbose", *_JSON_T)
_c("eval status", "[options] <evaluation>", "Show an evaluation's status",
   "Shows an evaluation's status, the allocations it placed and, for placements that failed, why.",
   ("-monitor", "Watch the evaluation until it completes, as job run does."), "-verbose", *_JSON_T)

# ---------------------------------------------------------------- job

_g("job", "Submit, inspect and manage jobs",
   "Groups the commands that run, plan, inspect, scale, restart, revert and stop jobs.")
_g("job periodic", "Work with periodic jobs", "Commands for periodic jobs.")
_g("job tag", "Name versions of a job",
   "Commands that tag a job's versions with names and remove the tags.")
_c("job allocs", "[options] <job>", "List a job's allocations",
   "Lists every allocation the servers keep for the job, newest first.",
   ("-all", "Accepted as Nomad's; the allocations of the job's earlier versions are always listed."),
   "-verbose", *_JSON_T)
_c("job deployments", "[options] <job>", "List a job's deployments",
   "Lists the deployments of a job's current version.",
   ("-latest", "Show only the job's latest deployment."),
   ("-all", "Include the deployments of the job's earlier versions."), "-verbose", *_JSON_T)
_c("job dispatch", "[options] <job> [<input file>|-]", "Dispatch a parameterized job",
   "Starts an instance of a parameterized job, with an optional payload read from a file or standard "
   "input (\"-\").",
   ("-meta <key=value>", "A metadata value of the instance; may be given more than once."),
   ("-idempotency-token <token>", "Dispatch only if no instance of the job dispatched with this token "
                                  "is still known to the servers; else answer with that instance."),
   ("-id-prefix-template <prefix>", "Put this in the instance's ID, after the job's ID and "
                                    "\"/dispatch-\"."),
   ("-priority <priority>", "The instance's priority, instead of the parameterized job's."),
   ("-wait", "After the evaluation, wait until the instance's allocations have all finished: exit 2 if "
             "one failed."), *_MONITOR)
_c("job eval", "[options] <job>", "Create a new evaluation of a job",
   "Makes the scheduler look at the job again, as if it had just been submitted.",
   ("-force-reschedule", "Reschedule failed allocations now, even those not yet due."), *_MONITOR)
_c("job history", "[options] <job>", "Show a job's versions",
   "Lists the versions of a job the servers keep, newest first.",
   ("-p", "Show the changes between each version and the one before it."),
   ("-full", "Show each version's whole job specification."),
   ("-version <n>", "Show only this version."),
   ("-diff-tag <name>", "With -p, compare each version with the version tagged with this name."),
   ("-diff-version <n>", "With -p, compare each version with this version."), *_JSON_T)
_c("job tag apply", "[options] <job>", "Name a version of a job",
   "Tags a version of the job (its current one by default) with a name and a description; a tagged "
   "version is kept however many versions follow, and \"nomad job revert\" takes the name.",
   ("-name <name>", "The tag's name, unique within the job; required."),
   ("-description <text>", "What the tag is for."),
   ("-version <n>", "The version to tag; the job's current one by default."))
_c("job tag unset", "[options] <job>", "Remove a version's tag",
   "Takes the named tag off the version that holds it.",
   ("-name <name>", "The tag to remove; required."))
_c("job init", "[options] [<filename>]", "Write an example job file",
   "Writes an example job specification (example.nomad.hcl by default); never over an existing file.",
   ("-short", "Write the example without its explanatory comments."), general=False)
_c("job inspect", "[options] <job>", "Show a submitted job's specification",
   "Prints the job as the servers hold it, in JSON, as {\"Job\": ...} (what \"nomad job run\" takes).",
   ("-version <N>", "The job as it was at this version."),
   ("-hcl", "Print the job file the version was submitted with, as it was written."),
   ("-with-vars", "With -hcl: print on standard error the command that runs it again with its "
                  "variables."), *_JSON_T)
_c("job periodic force", "[options] <job>", "Launch a periodic job now",
   "Starts an instance of a periodic job now, whatever its schedule.", *_MONITOR)
_c("job plan", "[options] <path>", "Show what submitting a job would change",
   "Asks the scheduler what would happen if the job file were submitted, without changing anything, "
   "and prints the changes and the job modify index to pass to \"nomad job run -check-index\". "
   "Exits 0 when nothing would change, 1 when allocations would be created or destroyed.",
   ("-diff", "Print the differences from the job as it runs now (on by default; -diff=false leaves them "
             "out)."), "-verbose",
   ("-policy-override", "Accepted as Nomad's: there are no Sentinel policies to override."),
   ("-json-output", "Print the plan's result as JSON (-json reads the job file as JSON)."),
   ("-t <template>", "Format the plan's result with a Go template."), *_VAR_OPTS)
_c("job promote", "[options] <job>", "Promote a job's canaries",
   "Promotes the canaries of a job's latest deployment, all its groups' or those named.",
   ("-group <group>", "Promote only this group's canaries; may be given more than once."), *_MONITOR)
_c("job restart", "[options] <job>", "Restart or reschedule a job's allocations",
   "Restarts the tasks of a job's running allocations in place, or with -reschedule replaces the "
   "allocations, in batches.",
   ("-all-tasks", "Restart every task, the finished lifecycle tasks too."),
   ("-task <task>", "Restart only this task; may be given more than once."),
   ("-group <group>", "Restart only this group's allocations; may be given more than once."),
   ("-reschedule", "Stop each allocation and have it placed again instead of restarting it in place."),
   ("-batch-size <n|n%>", "How many allocations at a time (a count, or a percentage); 1 by default."),
   ("-batch-wait <duration>", "How long to wait between batches; none by default."),
   ("-no-shutdown-delay", "With -reschedule: stop the allocations without waiting out their "
                          "shutdown_delay."),
   ("-on-error <ask|fail>", "What to do when a batch fails: this command stops there either way "
                            "(it does not prompt)."),
   ("-yes", "Accepted as Nomad's; this command never asks for confirmation."),
   ("-verbose", "Print full allocation IDs and a line for each allocation skipped."))
_c("job revert", "[options] <job> <version|tag>", "Go back to an earlier version of a job",
   "Submits the given earlier version of the job (by its number or its tag's name) again.", *_MONITOR)
_c("job run", "[options] <path>", "Submit a job, new or updated",
   "Submits the job file (HCL, JSON or TOML) and monitors the evaluation it creates. Exits 2 when "
   "allocations could not all be placed.",
   ("-check-index <index>", "Only submit when the job's modify index is this one (0: the job must not "
                            "exist yet), as \"nomad job plan\" prints it."),
   ("-output", "Print the JSON the job would be submitted as, and submit nothing."),
   ("-preserve-counts", "Keep the task groups' counts of the job already registered."),
   ("-preserve-resources", "Keep the tasks' resources of the job already registered."),
   ("-policy-override", "Accepted as Nomad's: there are no Sentinel policies to override."),
   ("-eval-priority <priority>", "The priority (1-100) of the evaluation the registration creates, "
                                 "instead of the job's."),
   *_MONITOR, *_VAR_OPTS)
_c("job scale", "[options] <job> [<group>] <count>", "Change a task group's count",
   "Sets how many instances of a task group run; the group may be left out when the job has one.",
   "-check-index <index>", *_MONITOR)
_c("job scaling-events", "[options] <job>", "Show a job's scaling events",
   "Lists the scaling events of each of the job's task groups, newest first.", "-verbose")
_c("job start", "[options] <job>", "Start a stopped job",
   "Submits the last version of a stopped job again.", *_MONITOR)
_c("job status", "[options] [<job>]", "Show a job's status",
   "Without an argument, lists the jobs; with one, shows that job's status, its task groups and "
   "allocations.",
   ("-short", "Show only the job's summary."),
   ("-evals", "Include the job's evaluations."),
   ("-all-allocs", "Accepted as Nomad's; the allocations of the job's earlier versions are always "
                   "shown."),
   ("-filter <expression>", "When listing jobs: only those this filter expression matches."),
   "-verbose", *_JSON_T)
_c("job stop", "[options] <job> [<job>...]", "Stop a running job",
   "Stops jobs and their allocations. With -detach each stop's evaluation ID is printed alone.",
   ("-purge", "Also remove the job from the servers' state, rather than keep it as dead."),
   ("-no-shutdown-delay", "Ignore the groups' and tasks' shutdown_delay: kill the tasks without "
                          "waiting after their services are deregistered."),
   ("-eval-priority <priority>", "The priority (1-100) of the evaluation the stop creates, instead of "
                                 "the job's."),
   ("-yes", "Do not ask for confirmation when a single job is named by a prefix of its ID."), *_MONITOR)
_c("job validate", "[options] <path>", "Check a job file",
   "Reads the job file and has the agent check it, reporting any error and warning.",
   "-verbose", *_VAR_OPTS)

# ---------------------------------------------------------------- ui

_c("ui", "[options] <identifier>", "Open the Nomad Web UI",
   "Opens the web UI's address in the default browser (xdg-open). An optional identifier (a job, "
   "allocation or node ID, or a prefix of one) opens that object's page. This agent serves no web UI: "
   "its /ui/ pages say so and point at the HTTP API.",
   ("-authenticate", "Exchange your ACL token for a one-time token added to the URL, if ACLs are enabled."),
   ("-show-url", "Show the web UI's URL instead of opening it."))

# ---------------------------------------------------------------- check, license, Enterprise-only

_c("check", "[options]", "Displays health of the local Nomad agent",
   "Checks the local agent's state; the exit code is Nagios-compatible (0 healthy, 2 critical), the "
   "reason is printed. A server is critical with fewer Raft peers than -min-peers; a client when its "
   "last heartbeat is older than its heartbeat TTL or it knows fewer servers than -min-servers.",
   ("-min-peers <n>", "The fewest Raft peers a server should know (default 0)."),
   ("-min-servers <n>", "The fewest servers a client should know (default 1)."))
_g("license", "Interact with Nomad Enterprise License",
   "Groups the license commands. Licenses are a Nomad Enterprise feature: this agent, as Nomad's "
   "Community Edition, has none.")
_c("license get", "[options]", "Retrieve the current Nomad Enterprise License",
   "Asks the agent for its license; as Nomad's Community Edition, the answer is that licenses are a "
   "Nomad Enterprise feature.")
_g("quota", "Interact with quotas",
   "Groups the resource quota commands. Quotas are a Nomad Enterprise feature: the agent refuses each "
   "request, as Nomad's Community Edition does.")
_c("quota list", "[options]", "List quota specifications", "Lists the quota specifications.", *_JSON_T)
_c("quota status", "[options] <quota>", "Display a quota's status and current usage",
   "Shows a quota specification and its usage.", *_JSON_T)
_c("quota inspect", "[options] <quota>", "Inspect a quota specification",
   "Prints a quota specification as JSON.", *_JSON_T)
_c("quota apply", "[options] <input>", "Create or update a quota specification",
   "Registers the quota specification in the file (- reads standard input).",
   ("-json", "The input is JSON."))
_c("quota delete", "[options] <quota>", "Delete a quota specification", "Deletes the quota specification.")
_g("sentinel", "Interact with Sentinel policies",
   "Groups the Sentinel policy commands. Sentinel is a Nomad Enterprise feature: the agent refuses each "
   "request, as Nomad's Community Edition does.")
_c("sentinel list", "[options]", "List Sentinel policies", "Lists the Sentinel policies.")
_c("sentinel read", "[options] <name>", "Inspects an existing Sentinel policies",
   "Shows a Sentinel policy.", ("-raw", "Print only the policy's source."))
_c("sentinel apply", "[options] <name> <file>", "Create a new or update existing Sentinel policies",
   "Writes the Sentinel policy in the file (- reads standard input).",
   ("-description <text>", "A description of the policy."),
   ("-scope <scope>", "Where the policy applies (submit-job or submit-host-volume)."),
   ("-level <level>", "The enforcement level (advisory, soft-mandatory or hard-mandatory)."))
_c("sentinel delete", "[options] <name>", "Delete an existing Sentinel policies",
   "Deletes the Sentinel policy.")
_g("recommendation", "Interact with the Nomad recommendation endpoint",
   "Groups the commands for Dynamic Application Sizing recommendations, a Nomad Enterprise feature: the "
   "agent refuses each request, as Nomad's Community Edition does.")
_c("recommendation list", "[options]", "Display all Nomad recommendations", "Lists the recommendations.",
   ("-job <job id>", "Only a job's recommendations."), ("-group <group>", "Only a task group's."),
   ("-task <task>", "Only a task's."), *_JSON_T)
_c("recommendation info", "[options] <recommendation_id>", "Display an individual Nomad recommendation",
   "Shows one recommendation.", *_JSON_T)
_c("recommendation apply", "[options] <recommendation_ids>", "Apply one or more Nomad recommendations",
   "Applies the recommendations to their jobs.", "-detach", "-verbose",
   ("-policy-override", "Override soft-mandatory Sentinel policies."))
_c("recommendation dismiss", "[options] <recommendation_ids>", "Dismiss one or more Nomad recommendations",
   "Dismisses the recommendations.")

# ---------------------------------------------------------------- namespace

_g("namespace", "Inspect and manage namespaces",
   "Groups the commands that list, show, create and delete namespaces.")
_c("namespace apply", "[options] <input>", "Create or update a namespace",
   "Creates or updates a namespace from a specification file (HCL, or JSON with -json; \"-\" reads "
   "standard input), or the namespace named as the only argument.",
   ("-quota <quota>", "The quota to attach to the namespace (Nomad Enterprise: refused here)."),
   ("-description <text>", "An optional description for the namespace."),
   ("-json", "Parse the input as a JSON namespace specification."))
_c("namespace delete", "[options] <namespace>", "Delete a namespace", "Deletes the namespace.")
_c("namespace inspect", "[options] <namespace>", "Show a namespace as JSON",
   "Prints the namespace as JSON.", "-t <template>")
_c("namespace list", "[options]", "List the namespaces", "Lists the namespaces.",
   ("-prefix <prefix>", "Only the namespaces whose name starts with this."), *_JSON_T)
_c("namespace status", "[options] <namespace>", "Show a namespace's status",
   "Shows a namespace and its details.", *_JSON_T)

# ---------------------------------------------------------------- node

_g("node", "Inspect and manage client nodes",
   "Groups the commands that show client nodes, drain them, set their scheduling eligibility, "
   "metadata and node pools.")
_g("node meta", "Read and change a node's metadata", "Commands for a client node's dynamic metadata.")
_g("node pool", "Inspect and manage node pools",
   "Commands that list, show, create and delete node pools and list their nodes and jobs.")
_c("node config", "[options] [<address>...]", "Show or change a client's server list",
   "Shows the servers the local client agent knows (-servers), or replaces that list with the "
   "addresses given (-update-servers).",
   ("-servers", "List the servers the client knows."),
   ("-update-servers", "Replace the client's server list with the addresses given."))
_c("node drain", "[options] <node>", "Drain a node, or stop draining it",
   "Turns draining on (-enable) or off (-disable) for a node: a draining node takes no new "
   "allocations and its allocations are moved elsewhere. One of -enable and -disable is required "
   "(or -monitor). With -enable the drain is followed, a line for each change, until it is done.",
   ("-enable", "Start draining the node."),
   ("-disable", "Stop draining the node."),
   ("-deadline <duration>", "With -enable: stop what is still running after this long (1h by default)."),
   ("-no-deadline", "With -enable: wait for the allocations to migrate however long it takes."),
   ("-force", "With -enable: stop the allocations now, without waiting for them to migrate."),
   ("-ignore-system", "With -enable: leave the system jobs' allocations running."),
   ("-keep-ineligible", "With -disable: keep the node ineligible for scheduling."),
   ("-self", "Drain the node of the agent asked (no node argument)."),
   ("-m <message>", "A message stored with the drain."),
   ("-meta <key=value>", "A metadata value stored with the drain; may be given more than once."),
   ("-monitor", "Follow a drain already set, changing nothing, until it is done."),
   ("-detach", "Return right after the drain is set, rather than follow it until it is done."), "-yes")
_c("node eligibility", "[options] <node>", "Set whether a node takes new allocations",
   "Marks a node eligible (-enable) or ineligible (-disable) for new allocations; running ones stay.",
   ("-enable", "Mark the node eligible."), ("-disable", "Mark the node ineligible."),
   ("-self", "Use the node of the agent asked (no node argument)."))
_c("node meta apply", "[options] [<key>=<value>...]", "Change a node's metadata",
   "Sets metadata values on a client node (\"key\" alone sets it empty).",
   ("-node-id <node>", "The node to change; the node of the agent asked by default."),
   ("-unset <key,key...>", "Remove these keys' dynamic values."))
_c("node meta read", "[options]", "Show a node's metadata",
   "Shows a client node's metadata: all of it, the dynamic values and the static ones.",
   ("-node-id <node>", "The node to read; the node of the agent asked by default."), *_JSON_T)
_c("node pool apply", "[options] <path>", "Create or update a node pool",
   "Creates or updates a node pool from its specification file (HCL, or JSON when named .json).",
   ("-json", "Read the file as JSON whatever its name."))
_c("node pool delete", "[options] <pool>", "Delete a node pool", "Deletes the node pool.")
_c("node pool info", "[options] <pool>", "Show a node pool", "Shows a node pool and its metadata.", *_JSON_T)
_c("node pool init", "[options] [<filename>]", "Write an example node pool file",
   "Writes an example node pool specification (pool.nomad.hcl by default); never over an existing "
   "file.",
   ("-out <hcl|json>", "The format written; hcl by default."),
   ("-quiet", "Print nothing on success."), general=False)
_c("node pool jobs", "[options] <pool>", "List a node pool's jobs", "Lists the jobs of a node pool.",
   *_paged("jobs"), *_JSON_T)
_c("node pool list", "[options]", "List the node pools", "Lists the node pools.",
   ("-prefix <prefix>", "Only the pools whose name starts with this."), *_paged("pools"), *_JSON_T)
_c("node pool nodes", "[options] <pool>", "List a node pool's nodes", "Lists the nodes of a node pool.",
   *_paged("nodes"), "-verbose", *_JSON_T)
_c("node status", "[options] [<node>]", "Show client nodes' status",
   "Without an argument, lists the client nodes; with one, shows that node's status, resources and "
   "allocations.",
   ("-self", "Show the node of the agent asked."),
   ("-short", "Show only the node's summary."),
   ("-allocs", "When listing: add each node's count of running allocations (a node's status always "
               "shows its allocations)."),
   ("-os", "When listing: add each node's operating system."),
   ("-quiet", "When listing: print only the nodes' IDs."),
   ("-stats", "Show detailed resource usage figures."),
   ("-filter <expression>", "When listing: only the nodes this filter expression matches."),
   ("-per-page <n>", "When listing: how many nodes to show per page."),
   ("-page-token <token>", "When listing: where the page starts, the token the previous page printed."),
   "-verbose", *_JSON_T)

# ---------------------------------------------------------------- operator

_g("operator", "Cluster-wide tools for operators",
   "Groups the tools that look after the servers: Raft, autopilot, the scheduler's configuration, "
   "snapshots, keyrings, metrics and debug bundles.")
_g("operator autopilot", "Read and change autopilot", "Commands for autopilot's configuration and health.")
_g("operator gossip", "Work with the gossip layer", "Commands for the servers' gossip protocol.")
_g("operator raft", "Work with the Raft subsystem",
   "Commands that show and change the servers' Raft configuration, and read a stopped server's Raft "
   "store.")
_g("operator root", "Work with root encryption keys", "Commands for the servers' root keys.")
_g("operator root keyring", "Manage root encryption keys", "List, rotate and remove the servers' root keys.")
_g("operator scheduler", "Read and change the scheduler configuration",
   "Commands for the cluster's scheduler configuration.")
_g("operator snapshot", "Save, inspect and restore snapshots of server state",
   "Commands that save the servers' state to a file, inspect such a file, and restore it.")
_c("operator api", "[options] <path>", "Send a request to the HTTP API",
   "Sends a request to the agent's HTTP API, with this CLI's address, token and TLS files, and "
   "prints the answer's body. A PUT or POST sends standard input as the body.",
   ("-X <method>", "The HTTP method; GET by default."),
   ("-H <'Name: value'>", "A header to send; may be given more than once."),
   ("-dryrun", "Print the equivalent curl command instead of sending the request."),
   ("-filter <expression>", "Send this filter expression as the request's filter parameter."),
   ("-verbose", "Print the request's and the answer's headers on standard error, as curl --verbose."))
_c("operator autopilot get-config", "[options]", "Show autopilot's configuration",
   "Shows the cluster's autopilot configuration.", *_JSON_T)
_c("operator autopilot health", "[options]", "Show autopilot's view of the servers' health",
   "Shows the leader's view of every server's health and the cluster's failure tolerance.")
_c("operator autopilot set-config", "[options]", "Change autopilot's configuration",
   "Changes the autopilot settings whose flags are given, leaving the others as they are.",
   ("-cleanup-dead-servers <true|false>", "Remove dead servers when a new one joins."),
   ("-max-trailing-logs <n>", "How far behind the leader's log a server may be and still be healthy."),
   ("-min-quorum <n>", "The fewest servers dead-server cleanup leaves."),
   ("-last-contact-threshold <duration>", "How long without contact from the leader a server may go "
                                          "and still be healthy."),
   ("-server-stabilization-time <duration>", "How long a new server must be healthy before it votes."),
   ("-enable-redundancy-zones <true|false>", "Enterprise setting: stored, not acted on."),
   ("-disable-upgrade-migration <true|false>", "Enterprise setting: stored, not acted on."),
   ("-enable-custom-upgrades <true|false>", "Enterprise setting: stored, not acted on."))
_c("operator debug", "[options]", "Collect a debug bundle",
   "Gathers the cluster's configuration and state, agents' logs, metrics and profiles from the "
   "servers and client nodes chosen, over a period, into a directory and a .tar.gz archive.",
   ("-duration <duration>", "How long to capture for; 5m by default."),
   ("-interval <duration>", "Time between captures of the cluster's state; 30s by default."),
   ("-output <path>", "Write the bundle's directory here, without an archive."),
   ("-server-id <id,id...>", "Servers to capture: names, prefixes, \"leader\" or \"all\" (the default)."),
   ("-node-id <id,id...>", "Client nodes to capture: ID prefixes or \"all\" (the default)."),
   ("-node-class <class>", "Only client nodes of this node class."),
   ("-max-nodes <n>", "At most this many client nodes (10 by default, 0 for no limit)."),
   ("-log-level <level>", "The level of the agents' logs captured; TRACE by default."),
   ("-log-include-location", "Include the source file and line in each log line (true by default)."),
   ("-log-file-export", "Also fetch each agent's log file written so far."),
   ("-log-lookback <duration>", "Also fetch this much of each agent's past log."),
   ("-event-topic <Topic:filter>", "Capture the event stream of these topics (\"none\" by default)."),
   ("-event-index <index>", "The event index to start the event stream at."),
   ("-pprof-duration <duration>", "How long each CPU profile lasts; 1s by default."),
   ("-pprof-interval <duration>", "Time between profiles; 30s by default."),
   ("-stale", "Let any server answer, not only the leader."),
   ("-region <region>", "The region to capture."),
   ("-namespace <namespace>", "The namespace whose jobs are captured."),
   ("-verbose", "Say more about what is captured."),
   ("-consul-http-addr, -consul-auth, -consul-token, -consul-token-file, -consul-client-cert, "
    "-consul-client-key, -consul-ca-cert, -consul-ca-path", "Where and how to reach Consul to capture "
                                                            "its status (CONSUL_* environment variables)."),
   ("-vault-address, -vault-token, -vault-ca-cert, -vault-ca-path, -vault-client-cert, "
    "-vault-client-key", "Where and how to reach Vault to capture its status (VAULT_* environment "
                         "variables)."))
_c("operator gossip keyring", "[options]", "Manage the gossip encryption keys",
   "With one of its options: lists, installs, makes primary or removes a gossip encryption key on "
   "every server. The subcommands below do the same.",
   ("-list", "List the keys the servers have installed."),
   ("-install <key>", "Install a new key."),
   ("-use <key>", "Make an installed key the one messages are encrypted with."),
   ("-remove <key>", "Remove an installed key."))
_c("operator gossip keyring generate", "", "Generate a new gossip encryption key",
   "Prints a new random key, to give to -install or to an agent's encrypt setting.", general=False)
_c("operator gossip keyring install", "[options] <key>", "Install a gossip encryption key",
   "Installs a new gossip encryption key on every server.")
_c("operator gossip keyring list", "[options]", "List the gossip encryption keys",
   "Lists the gossip encryption keys the servers have installed.")
_c("operator gossip keyring remove", "[options] <key>", "Remove a gossip encryption key",
   "Removes an installed gossip encryption key from every server.")
_c("operator gossip keyring use", "[options] <key>", "Change the primary gossip encryption key",
   "Makes an installed key the one gossip messages are encrypted with.")
_c("operator metrics", "[options]", "Show an agent's metrics",
   "Prints the metrics of the agent asked.",
   ("-format <format>", "\"prometheus\" for Prometheus's text format; JSON by default."),
   ("-pretty", "Indent the JSON."), *_JSON_T)
_c("operator raft info", "<path>", "Show a stopped server's Raft store",
   "Reads the Raft store under a stopped server's data directory and prints its indexes and terms.",
   general=False)
_c("operator raft list-peers", "[options]", "List the Raft peers",
   "Lists the servers of the Raft configuration, their address, state and voting status.",
   ("-stale", "Let any server answer from its own state, not only the leader."))
_c("operator raft logs", "[options] <path>", "Print a stopped server's Raft log",
   "Prints each entry of the Raft log under a stopped server's data directory as JSON, one a line.",
   ("-pretty", "Indent each entry's JSON."), general=False)
_c("operator raft remove-peer", "[options]", "Remove a server from the Raft configuration",
   "Removes the server with the given -peer-id from the Raft configuration (Raft protocol 3 removes by "
   "ID only).",
   ("-peer-id <id>", "The Raft ID of the server to remove (`operator raft list-peers` shows it)."))
_c("operator raft state", "[options] <path>", "Print a stopped server's state",
   "Rebuilds the state of a stopped server from its Raft store and prints its tables as JSON.",
   ("-last-index <index>", "Apply the log only up to this index (0 or less counts back from the last)."),
   general=False)
_c("operator raft transfer-leadership", "[options]", "Hand Raft leadership to another server",
   "Asks the leader to hand its leadership to the server named by -peer-id or -peer-address.",
   ("-peer-id <id>", "The Raft ID of the server to become leader."),
   ("-peer-address <host:port>", "The Raft address of the server to become leader."))
_c("operator root keyring list", "[options]", "List the root encryption keys",
   "Lists the servers' root encryption keys and their state.", "-verbose")
_c("operator root keyring remove", "[options] <key_id>", "Remove a root encryption key",
   "Removes an inactive root key (an ID or a unique prefix of one).",
   ("-force", "Remove the key even if it may still be in use."))
_c("operator root keyring rotate", "[options]", "Make a new root encryption key",
   "Creates a new root key; one of -now and -prepublish is required.",
   ("-now", "Make the new key active at once."),
   ("-prepublish <duration>", "Publish the new key now, to become active after this long (sent; this "
                              "agent's servers refuse it, having no prepublished keys)."),
   ("-full", "Also re-encrypt every variable with the new key (sent; this agent's servers refuse it)."),
   "-verbose")
_c("operator scheduler get-config", "[options]", "Show the scheduler configuration",
   "Shows the cluster's scheduler configuration.", *_JSON_T)
_c("operator scheduler set-config", "[options]", "Change the scheduler configuration",
   "Changes the scheduler settings whose flags are given, leaving the others as they are.",
   ("-scheduler-algorithm <binpack|spread>", "How allocations are spread over nodes."),
   ("-memory-oversubscription <true|false>", "Let tasks set a memory_max above their memory."),
   ("-reject-job-registration <true|false>", "Refuse job submissions (except from management tokens)."),
   ("-pause-eval-broker <true|false>", "Pause the eval broker: evaluations wait, unscheduled."),
   ("-preempt-batch-scheduler <true|false>", "Let batch jobs preempt lower-priority allocations."),
   ("-preempt-service-scheduler <true|false>", "Let service jobs preempt lower-priority allocations."),
   ("-preempt-sysbatch-scheduler <true|false>", "Let sysbatch jobs preempt lower-priority allocations."),
   ("-preempt-system-scheduler <true|false>", "Let system jobs preempt lower-priority allocations."),
   ("-node-limit-for-feasibility-checks <n>", "How many feasible nodes a group with affinities or "
                                              "spreads scores (0: Nomad's default, 100)."),
   ("-check-index <index>", "Only write when the configuration's modify index is still this one."))
_c("operator snapshot inspect", "<file>", "Show a snapshot file's details",
   "Checks a snapshot file and prints its metadata and a record count and size per table.",
   general=False)
_c("operator snapshot restore", "[options] <file>", "Restore the servers' state from a snapshot",
   "Checks a snapshot file, then has the servers replace their state with it.")
_c("operator snapshot save", "[options] [<file>]", "Save the servers' state to a snapshot file",
   "Saves a snapshot of the servers' state to the file (nomad-state-<date>-<unix time>.snap by "
   "default); never over an existing file.",
   ("-stale", "Let any server answer, not only the leader."),
   ("-redact", "Remove the root keyring's private key material from the file (a cluster restored from "
               "it cannot sign with those keys)."))
_c("operator snapshot state", "[options] <file>", "Print a snapshot's state as JSON",
   "Restores a snapshot file into a state store here and prints its tables as JSON.",
   ("-filter <expression>", "Print only the records this filter expression matches."), general=False)

# ---------------------------------------------------------------- scaling, server, service, system

_g("scaling", "Inspect scaling policies", "Commands for the cluster's scaling policies.")
_g("scaling policy", "Inspect scaling policies", "List scaling policies and show one.")
_c("scaling policy info", "[options] <policy_id>", "Show a scaling policy",
   "Shows a scaling policy (an ID or a unique prefix of one) and its document.", "-verbose", *_JSON_T)
_c("scaling policy list", "[options]", "List the scaling policies", "Lists the scaling policies.",
   ("-job <job>", "Only the policies of this job."),
   ("-type <type>", "Only the policies of this type (e.g. horizontal)."), "-verbose", *_JSON_T)
_g("server", "Inspect and manage servers",
   "Groups the commands that list the servers, join them together and force one to leave.")
_c("server force-leave", "[options] <node>", "Force a server out of the cluster",
   "Marks a failed server as left, so it is no longer tried.",
   ("-prune", "Also remove it from the member list at once."))
_c("server join", "[options] <address> [<address>...]", "Join the agent's server to others",
   "Has the server asked join the servers at the given gossip addresses.")
_c("server members", "[options]", "List the servers",
   "Lists the servers the agent knows through gossip and their status.",
   ("-verbose", "Also show each server's protocol and tags."),
   ("-detailed", "The older name of -verbose."), *_JSON_T)
_g("service", "Inspect Nomad service registrations",
   "Commands that list, show and delete Nomad service registrations.")
_c("service delete", "[options] <service> <id>", "Delete a service registration",
   "Deletes one registration of a service (it comes back when its allocation next registers it).",
   ("-namespace <namespace>", "The service's namespace; \"default\" by default."))
_c("service info", "[options] <service>", "Show a service's registrations",
   "Shows each registration of a service.",
   ("-namespace <namespace>", "The service's namespace; \"default\" by default."),
   *_paged("registrations"), "-verbose", *_JSON_T)
_c("service list", "[options]", "List the services", "Lists the registered services and their tags.",
   ("-namespace <namespace>", "The namespace to list (\"*\" for all); \"default\" by default."), *_JSON_T)
_g("system", "Run system maintenance", "Commands for cluster maintenance tasks.")
_g("system reconcile", "Run reconciliation tasks", "Commands that make derived state consistent again.")
_c("system gc", "[options]", "Run garbage collection now",
   "Has the servers collect dead jobs, evaluations, allocations and down nodes now.")
_c("system reconcile summaries", "[options]", "Recompute every job's summary",
   "Has the servers recompute the summary of every job.")

# ---------------------------------------------------------------- tls

_g("tls", "Create self-signed TLS certificates",
   "Groups the commands that create a certificate authority and certificates for Nomad agents and "
   "the CLI, and show a certificate's details.")
_g("tls ca", "Work with certificate authorities", "Create a certificate authority and show one.")
_g("tls cert", "Work with certificates", "Create certificates and show one.")
_c("tls ca create", "[options]", "Create a certificate authority",
   "Writes a new certificate authority's certificate and key (<domain>-agent-ca.pem and "
   "<domain>-agent-ca-key.pem; nomad-agent-ca.pem by default). Its subject is Nomad's default unless a "
   "subject flag is given: then -common-name, -country, -organization and -organizational-unit are "
   "required.",
   ("-days <n>", "How many days the certificate is valid; 1825 by default."),
   ("-domain <domain>", "The cluster's domain; \"nomad\" by default. Another needs -name-constraint."),
   ("-name-constraint", "Let the CA sign only names in -domain, localhost, nomad and each "
                        "-additional-domain."),
   ("-additional-domain <domain>", "With -name-constraint: another DNS zone the CA may sign names "
                                   "in; may be given more than once."),
   ("-common-name <name>", "The CA certificate's common name (its serial number is appended)."),
   ("-country <code>", "The subject's country."), ("-postal-code <code>", "The subject's postal code."),
   ("-province <name>", "The subject's province."), ("-locality <name>", "The subject's locality."),
   ("-street-address <address>", "The subject's street address."),
   ("-organization <name>", "The subject's organization."),
   ("-organizational-unit <name>", "The subject's organizational unit."), general=False)
_c("tls ca info", "<file>", "Show a certificate authority's details",
   "Prints the details of the CA certificate in the file.", general=False)
_c("tls cert create", "[options]", "Create a certificate",
   "Writes a new certificate and key for a server, a client or the CLI, signed by the CA. One of "
   "-server, -client and -cli is required.",
   ("-server", "A server's certificate."), ("-client", "A client's certificate."),
   ("-cli", "A certificate for the CLI."),
   ("-region <region>", "The region in the certificate's names; \"global\" by default."),
   ("-domain <domain>", "The domain in the certificate's names; \"nomad\" by default."),
   ("-days <n>", "How many days the certificate is valid; 365 by default."),
   ("-ca <file>", "The CA certificate; nomad-agent-ca.pem by default."),
   ("-key <file>", "The CA key; nomad-agent-ca-key.pem by default."),
   ("-additional-dnsname <name>", "Another DNS name the certificate is valid for; may be repeated."),
   ("-additional-ipaddress <ip>", "Another IP address the certificate is valid for; may be repeated."),
   general=False)
_c("tls cert info", "<file>", "Show a certificate's details",
   "Prints the details of the certificate in the file.", general=False)

# ---------------------------------------------------------------- var

_g("var", "Read and write variables",
   "Groups the commands that list, read, write and purge Nomad variables.")
_c("var get", "[options] <path> [<item>]", "Read a variable",
   "Prints a variable, or one of its items' value.",
   ("-item <key>", "Print only this item's value, as it is (no newline added)."),
   ("-out <json|table|hcl|go-template|none>", "How the variable is printed; a table on a terminal, JSON "
                                              "otherwise."),
   ("-template <template>", "With -out go-template: the Go template the variable is printed with."))
_c("var init", "[options] [<filename>]", "Write an example variable file",
   "Writes an example variable specification (spec.nv.hcl by default); never over an existing file.",
   ("-out <hcl|json>", "The format written; hcl by default."),
   ("-quiet", "Print nothing on success."), general=False)
_c("var list", "[options] [<prefix>]", "List variables",
   "Lists the variables (under a path prefix, if given) and when they last changed.",
   ("-out <json|table|terse|go-template>", "How the list is printed; a table on a terminal, JSON "
                                           "otherwise; terse: the paths alone."),
   ("-template <template>", "With -out go-template: the Go template each page is printed with."),
   *_paged("variables"), *_JSON_T)
_c("var purge", "[options] <path>", "Delete a variable", "Deletes a variable.", "-check-index <index>")
_c("var lock", "[options] <path> [@<spec file>] <child command...>",
   "Run a command while holding a variable's lock",
   "Acquires the lock of the variable at the path (waiting while another holder has it), runs the "
   "child command, renews the lock while the child runs, and releases it when the child exits. The "
   "exit code is the child's.",
   ("-ttl <duration>", "How long the lock lasts without a renewal; 15s by default."),
   ("-delay <duration>", "How long a lock its holder lost stays unavailable; 15s by default."),
   ("-max-retry <n>", "How many times a failed server request is tried again; 5 by default."),
   ("-backoff <duration>", "How long to wait between attempts to take a held lock."),
   ("-early-return", "Exit at once when another holder has the lock instead of waiting."),
   ("-shell", "Run the child through $SHELL -c (on by default; -shell=false runs it directly)."),
   ("-out <format>", "Accepted as Nomad's; this command prints no variable."),
   "-verbose")
_g("volume", "Inspect volumes", "Commands for CSI and dynamic host volumes (this agent has neither).")
_c("volume status", "[options] [<id>]", "Show volumes' status",
   "Lists the dynamic host volumes and the CSI volumes, or shows the one with the ID. This agent runs no "
   "CSI plugins and creates no dynamic host volumes, so both lists are empty.",
   ("-type <csi|host>", "Only volumes of this kind."),
   ("-node <node>", "With -type host (or none) and no ID: only this node's host volumes."),
   ("-node-pool <pool>", "With -type host (or none) and no ID: only host volumes in this node pool."),
   ("-short", "Accepted as Nomad's (there is nothing longer to shorten)."), "-verbose", *_JSON_T)
_g("plugin", "Inspect plugins", "Commands for CSI plugins (this agent runs none).")
_c("plugin status", "[options] [<plugin>]", "Show CSI plugins' status",
   "Lists the CSI plugins, or shows the one with the ID; this agent runs none.",
   ("-type <csi>", "The plugin type; csi, the only one."),
   ("-short", "Accepted as Nomad's (there is nothing longer to shorten)."), "-verbose", *_JSON_T)
_c("var put", "[options] <path> [<key>=<value>]...", "Create or update a variable",
   "Writes a variable: its items from key=value arguments (key=@file reads the value from a file) or "
   "from a specification (@file, or \"-\" for standard input). An existing variable is only "
   "overwritten with -force or -check-index.",
   ("-force", "Overwrite whatever is there."),
   "-check-index <index>",
   ("-in <json|hcl>", "The format of the specification read; json by default."),
   ("-out <json|table|hcl|go-template|none>", "How the written variable is printed: nothing on a "
                                              "terminal, JSON otherwise, by default."),
   ("-template <template>", "With -out go-template: the Go template the variable is printed with."),
   ("-verbose", "Say on standard error what is read and written (standard output keeps the variable)."))

# Aliases' own synopses come from their commands; "agent" is bin/nomad's (runtime.agent_main).
AGENT_SYNOPSIS = "Run a Nomad agent"
COMMON_COMMANDS = ("run", "stop", "status", "alloc", "job", "node", "agent")
HIDDEN_ALIASES = frozenset({"fs", "init", "inspect", "logs", "plan", "validate"})  # Nomad hides these too

GENERAL_OPTIONS = (
    ("-address <addr>", "The address of the agent's HTTP API. NOMAD_ADDR, else http://127.0.0.1:4646."),
    ("-region <region>", "The region of the servers to forward the command to. NOMAD_REGION by default; "
                         "else the agent's own region."),
    ("-namespace <namespace>", "The namespace of the queries and actions bound to one ('*': all, where a "
                               "command lists). NOMAD_NAMESPACE, else \"default\"."),
    ("-no-color", "Accepted for Nomad's scripts; this CLI prints no colour (also -force-color)."),
    ("-token <secret>", "The secret ID of the ACL token sent with each request. NOMAD_TOKEN by default."),
    ("-ca-cert <path>", "A PEM CA certificate to check the agent's HTTPS certificate with. NOMAD_CACERT "
                        "by default."),
    ("-ca-path <dir>", "A directory of PEM CA certificates (-ca-cert wins). NOMAD_CAPATH by default."),
    ("-client-cert <path>", "A PEM client certificate for HTTPS. NOMAD_CLIENT_CERT by default."),
    ("-client-key <path>", "The PEM key of -client-cert. NOMAD_CLIENT_KEY by default."),
    ("-tls-server-name <name>", "The name (SNI, and the one checked in the agent's certificate) of the agent "
                                "dialled over HTTPS. NOMAD_TLS_SERVER_NAME by default."),
    ("-tls-skip-verify", "Do not check the agent's HTTPS certificate at all (not recommended). "
                         "NOMAD_SKIP_VERIFY by default."),
)


def _commands() -> dict[tuple[str, ...], object]:
    from runtime.cli import COMMANDS  # runtime.cli imports this module lazily too

    return {w: h for w, h in COMMANDS.items() if not w[0].startswith("-")}  # -version: a flag


def _known() -> set[tuple[str, ...]]:
    """Every command and group path: the commands and all their prefixes."""
    return {w[:i] for w in _commands() for i in range(1, len(w) + 1)}


def group_words(prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The direct subcommands of *prefix* (commands or groups), sorted as Nomad's list."""
    return sorted(p for p in _known() if len(p) == len(prefix) + 1 and p[: len(prefix)] == prefix)


def _synopsis(words: tuple[str, ...]) -> str:
    if words in HELP:
        return HELP[words].synopsis
    if words in GROUPS:
        return GROUPS[words].synopsis
    return ""


def _wrap(text: str, indent: int) -> str:
    pad = " " * indent
    return textwrap.fill(text, WIDTH, initial_indent=pad, subsequent_indent=pad, break_on_hyphens=False,
                         break_long_words=False)  # a flag's name stays whole


def _options(title: str, options: tuple[tuple[str, str], ...]) -> list[str]:
    out = ["", f"{title}:"]
    for head, text in options:
        out += ["", _wrap(head, 2), _wrap(text, 4)]
    return out


def _subcommands(words: tuple[str, ...]) -> list[str]:
    subs = group_words(words)
    if not subs:
        return []
    width = max(len(s[-1]) for s in subs)
    return ["", "Subcommands:", *(f"    {s[-1].ljust(width)}    {_synopsis(s)}".rstrip() for s in subs)]


def command_help(words: tuple[str, ...]) -> str:
    """The help of a command or group: Nomad's layout, then its subcommands when it has any."""
    name = "nomad " + " ".join(words)
    if words in HELP or words in _commands():
        h = HELP.get(words) or Help("[options]", "", "No help is written for this command yet.")
        lines = [f"Usage: {name} {h.usage}".rstrip(), "", _wrap(h.description, 2)]
        if h.general:
            lines += _options("General Options", GENERAL_OPTIONS)
        if h.options:
            lines += _options(" ".join(w.title() for w in words) + " Options", h.options)
    else:
        g = GROUPS.get(words) or Group("", "Commands grouped under this name.")
        lines = [f"Usage: {name} <subcommand> [options] [args]", "", _wrap(g.description, 2), "",
                 _wrap("Run a subcommand with -h for its own usage and options.", 2)]
    return "\n".join(lines + _subcommands(words))


def _columns(rows: list[tuple[str, str]]) -> list[str]:
    width = max(len(n) for n, _ in rows)  # Go's tabwriter: padding 6 past the longest name
    return [f"    {n.ljust(width)}      {s}".rstrip() for n, s in rows]


def top_usage() -> str:
    """Nomad's top-level list: the common commands, then the others, each with its synopsis."""
    from runtime.cli import ALIASES, DEPRECATED_ALIASES

    names: dict[str, str] = {w[0]: _synopsis(w[:1]) for w in _known() if len(w) == 1}
    names["agent"] = AGENT_SYNOPSIS
    for alias, target in ALIASES.items():
        if alias not in DEPRECATED_ALIASES and alias not in HIDDEN_ALIASES and "-" not in alias:
            names.setdefault(alias, _synopsis(target))
    common = [(n, names[n]) for n in COMMON_COMMANDS if n in names]
    other = [(n, names[n]) for n in sorted(names) if n not in COMMON_COMMANDS]
    return "\n".join(["Usage: nomad [-version] [-help] <command> [args]", "", "Common commands:",
                      *_columns(common), "", "Other commands:", *_columns(other)])


def intercept(rest: list[str]) -> int | None:
    """Answer a help request, a group alone or an unknown command as Nomad's CLI; None: run the command.

    *rest* is the command line after the general flags (-address, -token, TLS files) and aliases."""
    from runtime.cli import COMMANDS

    if rest and rest[0].startswith("-") and tuple(rest[:1]) in COMMANDS:  # -version: before any command
        return None
    before = rest[: rest.index("--")] if "--" in rest else rest
    asked = any(a in HELP_FLAGS for a in before)
    args = [a for a in before if a not in HELP_FLAGS]
    lead = []
    while args and args[0].startswith("-"):
        lead.append(args.pop(0))
    words: list[str] = []
    for a in args:
        if not a or a.startswith("-") or " " in a:
            break
        words.append(a)
    known = _known()
    path = next((tuple(words[:i]) for i in range(len(words), 0, -1) if tuple(words[:i]) in known), ())
    if not path:
        if asked and not words:
            print(top_usage())
            return EXIT_HELP_ASKED
        print(top_usage())
        return EXIT_UNKNOWN
    if asked:
        print(command_help(path))
        return EXIT_HELP_ASKED
    if lead:
        print("Invalid flags before the subcommand. If these flags are for\n"
              "the subcommand, please put them after the subcommand.\n")
        print(command_help(path))
        return EXIT_GROUP_HELP
    if path not in _commands():
        print(command_help(path))
        return EXIT_GROUP_HELP
    return None
