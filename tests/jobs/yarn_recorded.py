"""Messages YARN and Spark on YARN print and answer, recorded from their sources, for the YARN manager's tests.

Each constant names where its text comes from. Hadoop 3.3/3.4 line:
- ``hadoop-yarn-client/src/main/java/org/apache/hadoop/yarn/client/cli/ApplicationCLI.java``:
  ``printApplicationReport`` (the "Application Report : " block, one "\\t<Key> : <value>" line a field) and
  ``killApplication`` ("Killing application <id>", "Application <id> has already finished ",
  "Application with id '<id>' doesn't exist in RM.");
- ``hadoop-yarn-client/src/test/java/org/apache/hadoop/yarn/client/cli/TestYarnCLI.java``
  ``testGetApplicationReport``: the exact text printApplicationReport prints for a FINISHED/SUCCEEDED report;
- ``hadoop-yarn-common/src/main/java/org/apache/hadoop/yarn/logaggregation/LogToolUtils.java``
  ``formatContainerLogHeader`` (what ``yarn logs`` prints before each log file) and LogsCLI's messages when no
  aggregated log exists;
- ``hadoop-yarn-site/src/site/markdown/ResourceManagerRest.md``: the "Cluster Application API" answer.
Spark 3.x/4.x: ``resource-managers/yarn/src/main/scala/org/apache/spark/deploy/yarn/Client.scala`` ("Submitting
application <id> to ResourceManager", "Application report for <id> (state: <state>)", ``formatReportDetails``)
with Hadoop's ``YarnClientImpl`` ("Submitted application <id>").
"""

from __future__ import annotations

from typing import Any

APP_ID = "application_1663000676736_0003"

# spark-submit --master yarn --deploy-mode cluster --conf spark.yarn.submit.waitAppCompletion=false, log4j's
# default console layout. The "Submitting application" to "user: hadoop" lines are a Spark 3 submission on an EMR
# cluster as a public log shows them; the lines around them are Client.scala's other logInfo messages. A
# fire-and-forget submission prints one report and spark-submit exits 0.
SPARK_SUBMIT_CLUSTER = """\
22/09/12 18:04:19 INFO DefaultNoHARMFailoverProxyProvider: Connecting to ResourceManager at ip-172-31-57-4.ec2.internal/172.31.57.4:8032
22/09/12 18:04:19 INFO Client: Requesting a new application from cluster with 2 NodeManagers
22/09/12 18:04:20 INFO Client: Setting up container launch context for our AM
22/09/12 18:04:20 INFO Client: Submitting application application_1663000676736_0003 to ResourceManager
22/09/12 18:04:20 INFO YarnClientImpl: Submitted application application_1663000676736_0003
22/09/12 18:04:21 INFO Client: Application report for application_1663000676736_0003 (state: ACCEPTED)
22/09/12 18:04:21 INFO Client: \n\
\t client token: N/A
\t diagnostics: AM container is launched, waiting for AM container to Register with RM
\t ApplicationMaster host: N/A
\t ApplicationMaster RPC port: -1
\t queue: default
\t start time: 1663005860828
\t final status: UNDEFINED
\t tracking URL: http://ip-172-31-57-4.ec2.internal:20888/proxy/application_1663000676736_0003/
\t user: hadoop
22/09/12 18:04:21 INFO ShutdownHookManager: Shutdown hook called
"""

# spark-submit refused before YARN gave an id (no queue of that name): no application id in it.
SPARK_SUBMIT_REFUSED = """\
22/09/12 18:10:02 INFO Client: Requesting a new application from cluster with 2 NodeManagers
Exception in thread "main" org.apache.hadoop.yarn.exceptions.YarnException: Failed to submit application_1663000676736_0004 to YARN : org.apache.hadoop.security.AccessControlException: Queue root.nosuch does not exist
\tat org.apache.hadoop.yarn.client.api.impl.YarnClientImpl.submitApplication(YarnClientImpl.java:336)
"""

# TestYarnCLI.testGetApplicationReport's expected output (the i == 1 case): exactly what printApplicationReport
# prints, "\t<Key> : <value>" lines, the timeouts three to a line, and PrintWriter's trailing empty line.
TEST_YARN_CLI_REPORT = (
    "Application Report : \n"
    "\tApplication-Id : application_1234_0005\n"
    "\tApplication-Name : appname\n"
    "\tApplication-Type : YARN\n"
    "\tUser : user\n"
    "\tQueue : queue\n"
    "\tApplication Priority : 0\n"
    "\tStart-Time : 0\n"
    "\tFinish-Time : 0\n"
    "\tProgress : 53.79%\n"
    "\tState : FINISHED\n"
    "\tFinal-State : SUCCEEDED\n"
    "\tTracking-URL : N/A\n"
    "\tRPC Port : 124\n"
    "\tAM Host : host\n"
    "\tAggregate Resource Allocation : 123456 MB-seconds, 4567 vcore-seconds\n"
    "\tAggregate Resource Preempted : 1111 MB-seconds, 2222 vcore-seconds\n"
    "\tLog Aggregation Status : SUCCEEDED\n"
    "\tDiagnostics : diagnostics\n"
    "\tUnmanaged Application : false\n"
    "\tApplication Node Label Expression : high-mem\n"
    "\tAM container Node Label Expression : high-mem\n"
    "\tTimeoutType : LIFETIME\tExpiryTime : UNLIMITED\tRemainingTime : -1seconds\n"
    "\n"
)

# A failed Spark driver's diagnostics as the RM keeps them: Spark's ApplicationMaster unregisters with
# "User class threw exception: ..." and the stack trace, so the Diagnostics value runs over several lines.
FAILED_DIAGNOSTICS = (
    "User class threw exception: java.lang.RuntimeException: boom\n"
    "\tat com.example.Job$.main(Job.scala:12)\n"
    "\tat com.example.Job.main(Job.scala)"
)


def application_report(
    app_id: str = APP_ID,
    *,
    state: str,
    final: str = "UNDEFINED",
    diagnostics: str = "",
    am_host: str = "N/A",
    aggregation: str = "NOT_START",
    usage: bool = True,
) -> str:
    """What ``yarn application -status`` prints on stdout, field by field as ApplicationCLI.printApplicationReport
    prints them (Hadoop 3.3/3.4)."""
    allocation = "123456 MB-seconds, 4567 vcore-seconds" if usage else "N/A"
    preempted = "1111 MB-seconds, 2222 vcore-seconds" if usage else "N/A"
    fields = [
        ("Application-Id", app_id),
        ("Application-Name", "appname" if app_id.startswith("application_1234_") else "headwater-job"),
        ("Application-Type", "YARN" if app_id.startswith("application_1234_") else "SPARK"),
        ("User", "user" if app_id.startswith("application_1234_") else "hadoop"),
        ("Queue", "queue" if app_id.startswith("application_1234_") else "default"),
        ("Application Priority", "0"),
        ("Start-Time", "0"),
        ("Finish-Time", "0"),
        ("Progress", "53.79%"),
        ("State", state),
        ("Final-State", final),
        ("Tracking-URL", "N/A"),
        ("RPC Port", "124"),
        ("AM Host", am_host),
        ("Aggregate Resource Allocation", allocation),
        ("Aggregate Resource Preempted", preempted),
        ("Log Aggregation Status", aggregation),
        ("Diagnostics", diagnostics),
        ("Unmanaged Application", "false"),
        ("Application Node Label Expression", "high-mem"),
        ("AM container Node Label Expression", "high-mem"),
    ]
    lines = ["Application Report : "] + [f"\t{key} : {value}" for key, value in fields]
    lines.append("\tTimeoutType : LIFETIME\tExpiryTime : UNLIMITED\tRemainingTime : -1seconds")
    return "\n".join(lines) + "\n\n"


# ApplicationCLI.printApplicationReport / killApplication for an id the RM does not know.
STATUS_NOT_FOUND = "Application with id '{app_id}' doesn't exist in RM or Timeline Server.\n"
KILL_NOT_FOUND = "Application with id '{app_id}' doesn't exist in RM.\n"
KILL_RUNNING = "Killing application {app_id}\n"
KILL_FINISHED = "Application {app_id} has already finished \n"

# The yarn CLI's own log on stderr (log4j) and what it prints when the RM cannot be reached (Hadoop 3.3's RM
# proxy gives up after its retries with a ConnectException wrapped by NetUtils).
CLI_STDERR = (
    "2023-05-04 10:11:12,345 INFO client.DefaultNoHARMFailoverProxyProvider: "
    "Connecting to ResourceManager at rm.example.com/10.0.0.5:8032\n"
)
CLI_UNREACHABLE = (
    CLI_STDERR + "2023-05-04 10:11:13,001 INFO ipc.Client: Retrying connect to server: "
    "rm.example.com/10.0.0.5:8032. Already tried 0 time(s); retry policy is "
    "RetryUpToMaximumCountWithFixedSleep(maxRetries=10, sleepTime=1000 MILLISECONDS)\n"
    'Exception in thread "main" java.net.ConnectException: Call From worker-1/10.0.0.9 to rm.example.com:8032 '
    "failed on connection exception: java.net.ConnectException: Connection refused; For more details see:  "
    "http://wiki.apache.org/hadoop/ConnectionRefused\n"
)

AM_CONTAINER = "container_1663000676736_0003_01_000001"
AM_NODE = "worker-2.example.com_45454"


def log_block(log_type: str, content: str, *, container: str = AM_CONTAINER, node: str = AM_NODE) -> str:
    """One log file as ``yarn logs`` prints it (Hadoop 3.x): LogToolUtils.formatContainerLogHeader, the content,
    then "\nEnd of LogType:<file>\n" and a line of stars 50 longer than that, and an empty line."""
    header = f"Container: {container} on {node}"
    end = f"End of LogType:{log_type}"
    return (
        f"{header}\nLogAggregationType: AGGREGATED\n{'=' * len(header)}\nLogType:{log_type}\n"
        f"LogLastModifiedTime:Thu Nov 10 20:16:40 +0800 2022\nLogLength:{len(content.encode())}\nLogContents:\n"
        f"{content}\n{end}\n{'*' * (len(end) + 50)}\n\n"
    )


# The prelaunch.out content as a Hadoop 3 cluster printed it (a public `yarn logs` sample); stdout and stderr are
# a Spark driver's (its ApplicationMaster's own log lines on stderr).
PRELAUNCH_OUT = (
    "Setting up env variables\nSetting up job resources\nCopying debugging information\nLaunching container\n"
)
DRIVER_STDOUT = "rows written: 42\nall done\n"
DRIVER_STDERR = (
    "22/11/10 20:16:20 INFO ApplicationMaster: Registered signal handlers for [TERM, HUP, INT]\n"
    "22/11/10 20:16:39 INFO ApplicationMaster: Final app status: SUCCEEDED, exitCode: 0\n"
)
# `yarn logs -applicationId <id> -am -1` of a finished Spark driver: the CLI's log line on stderr, then each file.
AGGREGATED_LOGS = (
    "2023-05-04 10:20:01,002 INFO client.DefaultNoHARMFailoverProxyProvider: Connecting to ResourceManager at "
    "rm.example.com/10.0.0.5:8032\n"
    + log_block("prelaunch.out", PRELAUNCH_OUT)
    + log_block("stdout", DRIVER_STDOUT)
    + log_block("stderr", DRIVER_STDERR)
)


def tail_each_file(text: str, size: int) -> str:
    """``text`` with each file's content cut to its last ``size`` bytes, as ``yarn logs -size -<size>`` prints
    it (LogToolUtils.outputContainerLog skips to the tail; the header keeps the file's whole length)."""
    import re

    def cut(match: re.Match[str]) -> str:
        content = match.group(2).encode()
        return match.group(1) + content[-size:].decode(errors="replace") + match.group(3)

    return re.sub(r"(LogContents:\n)(.*?)(\nEnd of LogType:)", cut, text, flags=re.DOTALL)


# `yarn logs` when aggregation is off or not finished (Hadoop 3.x LogsCLI: the remote log directory is missing).
LOGS_NOT_AGGREGATED = """\
File /tmp/logs/hadoop/logs-tfile/application_1663000676736_0003 does not exist.

Can not find any log file matching the pattern: [ALL] for the application: application_1663000676736_0003
Can not find the logs for the application: application_1663000676736_0003 with the appOwner: hadoop
"""
# Hadoop 2.x/3.0's LogCLIHelpers.logDirNotExist.
LOGS_NOT_AGGREGATED_OLD = """\
/tmp/logs/hadoop/logs/application_1663000676736_0003 does not exist.
Log aggregation has not completed or is not enabled.
"""


def rm_app(
    app_id: str = APP_ID, *, state: str, final: str = "UNDEFINED", diagnostics: str = "", aggregation: str = "NOT_START"
) -> dict[str, Any]:
    """``GET /ws/v1/cluster/apps/{appid}``'s answer, shaped as ResourceManagerRest.md's example."""
    return {
        "app": {
            "id": app_id,
            "user": "hadoop",
            "name": "headwater-job",
            "queue": "default",
            "state": state,
            "finalStatus": final,
            "progress": 100 if state == "FINISHED" else 10,
            "trackingUI": "History" if state == "FINISHED" else "ApplicationMaster",
            "trackingUrl": f"http://rm.example.com:8088/proxy/{app_id}/",
            "diagnostics": diagnostics,
            "clusterId": 1663000676736,
            "applicationType": "SPARK",
            "applicationTags": "",
            "priority": 0,
            "startedTime": 1663005860828,
            "finishedTime": 0,
            "elapsedTime": 304578,
            "amContainerLogs": "http://worker-2.example.com:8042/node/containerlogs/container_1663000676736_0003_01_000001/hadoop",
            "amHostHttpAddress": "worker-2.example.com:8042",
            "allocatedMB": 2048,
            "allocatedVCores": 2,
            "runningContainers": 2,
            "memorySeconds": 206464,
            "vcoreSeconds": 201,
            "queueUsagePercentage": 0,
            "clusterUsagePercentage": 0,
            "preemptedResourceMB": 0,
            "preemptedResourceVCores": 0,
            "numNonAMContainerPreempted": 0,
            "numAMContainerPreempted": 0,
            "logAggregationStatus": aggregation,
            "unmanagedApplication": False,
            "appNodeLabelExpression": "",
            "amNodeLabelExpression": "",
        }
    }


# The RM's answer for an id it does not know (RMWebServices throws NotFoundException, rendered as RemoteException).
RM_NOT_FOUND = {
    "RemoteException": {
        "exception": "NotFoundException",
        "message": "java.lang.Exception: app with id: {app_id} not found",
        "javaClassName": "org.apache.hadoop.yarn.webapp.NotFoundException",
    }
}
