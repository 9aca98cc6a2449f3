#!/usr/bin/python3
"""Schema check of warren's Kubernetes manifests (docs/DEPLOY.md).

usage: check_k8s.py FILE.yaml...

Debian ships kubectl but no offline OpenAPI schemas (kubectl validates
against a cluster's), so this checks the manifests against the fields
they use, with the rules of the Kubernetes API for them: apps/v1
StatefulSet and v1 Service, their PodSpec, Container, Probe, Lifecycle,
EnvVar, Volume (secret) and SecurityContext parts.  As `kubectl
--validate=strict` does, an unknown field is an error, and so is a
missing required one, a wrong type, a value outside its enum, an invalid
name, port or quantity.  Then warren's own rules: the StatefulSet's
serviceName is a headless Service (clusterIP None) that publishes
not-ready addresses, the selector matches the pod labels, every Service
selects the pods, --join names that headless Service by dns:, the
readiness probe asks /readyz, and the grace period exceeds the drain.

Prints "ok FILE" or one line per problem ("FILE: doc N (Kind name):
path: why"); exits 1 when any file has a problem.  Needs PyYAML
(Debian python3-yaml, installed by tools/bootstrap).
"""
import re
import sys

import yaml

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]"
                         r"([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
IANA_SVC = re.compile(r"^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
LABEL_KEY = re.compile(r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]"
                       r"{0,61}[A-Za-z0-9])?$")
LABEL_VAL = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")

# ---- the schema: a small language ----------------------------------------
# A type is one of:
#   "string" "int" "bool" "port" "quantity" "intorstring" "labels" "smap"
#   ("enum", [values])   ("list", type)   ("name", regex, maxlen)
#   {"field": (type, required), ...}  an object; unknown fields rejected


def obj(**fields):
    return fields


def req(t):
    return (t, True)


def opt(t):
    return (t, False)


PROTO = ("enum", ["TCP", "UDP", "SCTP"])
PORTNAME = ("name", IANA_SVC, 15)

HTTP_GET = obj(path=opt("string"), port=req("intorstring"),
               host=opt("string"), scheme=opt(("enum", ["HTTP", "HTTPS"])),
               httpHeaders=opt(("list", obj(name=req("string"),
                                            value=req("string")))))
EXEC = obj(command=opt(("list", "string")))
PROBE = obj(httpGet=opt(HTTP_GET), exec=opt(EXEC),
            tcpSocket=opt(obj(port=req("intorstring"), host=opt("string"))),
            initialDelaySeconds=opt("int"), periodSeconds=opt("int"),
            timeoutSeconds=opt("int"), successThreshold=opt("int"),
            failureThreshold=opt("int"),
            terminationGracePeriodSeconds=opt("int"))
HANDLER = obj(exec=opt(EXEC), httpGet=opt(HTTP_GET),
              sleep=opt(obj(seconds=req("int"))))
ENV = obj(name=req("string"), value=opt("string"),
          valueFrom=opt(obj(
              fieldRef=opt(obj(fieldPath=req("string"),
                               apiVersion=opt("string"))),
              secretKeyRef=opt(obj(name=req("string"), key=req("string"),
                                   optional=opt("bool"))),
              configMapKeyRef=opt(obj(name=req("string"), key=req("string"),
                                      optional=opt("bool"))))))
CONTAINER_SC = obj(allowPrivilegeEscalation=opt("bool"),
                   readOnlyRootFilesystem=opt("bool"),
                   runAsNonRoot=opt("bool"), runAsUser=opt("int"),
                   runAsGroup=opt("int"), privileged=opt("bool"),
                   capabilities=opt(obj(add=opt(("list", "string")),
                                        drop=opt(("list", "string")))),
                   seccompProfile=opt(obj(type=req(("enum", [
                       "RuntimeDefault", "Localhost", "Unconfined"])),
                       localhostProfile=opt("string"))))
CONTAINER = obj(
    name=req(("name", DNS1123_LABEL, 63)), image=req("string"),
    imagePullPolicy=opt(("enum", ["Always", "IfNotPresent", "Never"])),
    command=opt(("list", "string")), args=opt(("list", "string")),
    workingDir=opt("string"), env=opt(("list", ENV)),
    ports=opt(("list", obj(name=opt(PORTNAME), containerPort=req("port"),
                           protocol=opt(PROTO), hostPort=opt("port"),
                           hostIP=opt("string")))),
    readinessProbe=opt(PROBE), livenessProbe=opt(PROBE),
    startupProbe=opt(PROBE),
    lifecycle=opt(obj(preStop=opt(HANDLER), postStart=opt(HANDLER))),
    resources=opt(obj(requests=opt("qmap"), limits=opt("qmap"))),
    securityContext=opt(CONTAINER_SC),
    volumeMounts=opt(("list", obj(name=req("string"), mountPath=req("string"),
                                  readOnly=opt("bool"),
                                  subPath=opt("string")))),
    terminationMessagePolicy=opt(("enum", ["File",
                                           "FallbackToLogsOnError"])))
POD_SC = obj(runAsNonRoot=opt("bool"), runAsUser=opt("int"),
             runAsGroup=opt("int"), fsGroup=opt("int"),
             supplementalGroups=opt(("list", "int")),
             seccompProfile=opt(obj(type=req(("enum", [
                 "RuntimeDefault", "Localhost", "Unconfined"])),
                 localhostProfile=opt("string"))))
VOLUME = obj(name=req(("name", DNS1123_LABEL, 63)),
             secret=opt(obj(secretName=req("string"), defaultMode=opt("int"),
                            optional=opt("bool"),
                            items=opt(("list", obj(key=req("string"),
                                                   path=req("string"),
                                                   mode=opt("int")))))),
             configMap=opt(obj(name=req("string"), defaultMode=opt("int"),
                               optional=opt("bool"))),
             emptyDir=opt(obj(medium=opt("string"),
                              sizeLimit=opt("quantity"))))
POD_SPEC = obj(containers=req(("list", CONTAINER)),
               initContainers=opt(("list", CONTAINER)),
               volumes=opt(("list", VOLUME)),
               terminationGracePeriodSeconds=opt("int"),
               securityContext=opt(POD_SC),
               serviceAccountName=opt("string"),
               automountServiceAccountToken=opt("bool"),
               enableServiceLinks=opt("bool"),
               nodeSelector=opt("smap"),
               restartPolicy=opt(("enum", ["Always", "OnFailure", "Never"])),
               dnsPolicy=opt(("enum", ["ClusterFirst",
                                       "ClusterFirstWithHostNet", "Default",
                                       "None"])),
               hostNetwork=opt("bool"))
METADATA = obj(name=req(("name", DNS1123_SUB, 253)),
               namespace=opt(("name", DNS1123_LABEL, 63)),
               labels=opt("labels"), annotations=opt("smap"))
TEMPLATE_META = obj(labels=opt("labels"), annotations=opt("smap"),
                    name=opt("string"))
STATEFULSET = obj(
    apiVersion=req(("enum", ["apps/v1"])), kind=req(("enum", ["StatefulSet"])),
    metadata=req(METADATA),
    spec=req(obj(
        serviceName=req("string"), replicas=opt("int"),
        minReadySeconds=opt("int"), revisionHistoryLimit=opt("int"),
        podManagementPolicy=opt(("enum", ["OrderedReady", "Parallel"])),
        updateStrategy=opt(obj(
            type=opt(("enum", ["RollingUpdate", "OnDelete"])),
            rollingUpdate=opt(obj(partition=opt("int"),
                                  maxUnavailable=opt("intorstring"))))),
        selector=req(obj(matchLabels=opt("labels"))),
        template=req(obj(metadata=opt(TEMPLATE_META), spec=req(POD_SPEC))))))
SERVICE = obj(
    apiVersion=req(("enum", ["v1"])), kind=req(("enum", ["Service"])),
    metadata=req(obj(name=req(("name", DNS1035_LABEL, 63)),
                     namespace=opt(("name", DNS1123_LABEL, 63)),
                     labels=opt("labels"), annotations=opt("smap"))),
    spec=req(obj(
        type=opt(("enum", ["ClusterIP", "NodePort", "LoadBalancer",
                           "ExternalName"])),
        clusterIP=opt("string"), selector=opt("smap"),
        publishNotReadyAddresses=opt("bool"),
        externalTrafficPolicy=opt(("enum", ["Cluster", "Local"])),
        sessionAffinity=opt(("enum", ["None", "ClientIP"])),
        ports=opt(("list", obj(name=opt(("name", DNS1123_LABEL, 63)),
                               port=req("port"), targetPort=opt("intorstring"),
                               protocol=opt(PROTO),
                               nodePort=opt("port")))))))
KINDS = {("apps/v1", "StatefulSet"): STATEFULSET, ("v1", "Service"): SERVICE}


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_type(t, v, path, errs):
    """Appends "path: why" for every violation of |t| by |v|."""
    if isinstance(t, dict):
        if not isinstance(v, dict):
            errs.append("%s: want an object" % path)
            return
        for k in v:
            if k not in t:
                errs.append("%s.%s: unknown field" % (path, k))
        for k, (ft, required) in t.items():
            if k in v:
                check_type(ft, v[k], "%s.%s" % (path, k), errs)
            elif required:
                errs.append("%s.%s: required" % (path, k))
        return
    if isinstance(t, tuple):
        if t[0] == "list":
            if not isinstance(v, list):
                errs.append("%s: want a list" % path)
                return
            for i, e in enumerate(v):
                check_type(t[1], e, "%s[%d]" % (path, i), errs)
        elif t[0] == "enum":
            if v not in t[1]:
                errs.append("%s: %r is not one of %s" % (path, v,
                                                         ", ".join(t[1])))
        elif t[0] == "name":
            if not isinstance(v, str) or len(v) > t[2] or not t[1].match(v):
                errs.append("%s: %r is not a valid name" % (path, v))
        return
    if t == "string":
        if not isinstance(v, str):
            errs.append("%s: want a string, got %r" % (path, v))
    elif t == "int":
        if not is_int(v):
            errs.append("%s: want an integer, got %r" % (path, v))
    elif t == "bool":
        if not isinstance(v, bool):
            errs.append("%s: want true or false, got %r" % (path, v))
    elif t == "port":
        if not is_int(v) or not 1 <= v <= 65535:
            errs.append("%s: want a port 1-65535, got %r" % (path, v))
    elif t == "intorstring":
        if is_int(v):
            if not 1 <= v <= 65535:
                errs.append("%s: port %r out of range" % (path, v))
        elif not isinstance(v, str) or not IANA_SVC.match(v):
            errs.append("%s: want a port number or name, got %r" % (path, v))
    elif t == "quantity":
        if not (is_int(v) or (isinstance(v, str) and QUANTITY.match(v))):
            errs.append("%s: %r is not a quantity" % (path, v))
    elif t == "qmap":
        if not isinstance(v, dict):
            errs.append("%s: want an object" % path)
            return
        for k, q in v.items():
            if k not in ("cpu", "memory", "ephemeral-storage"):
                errs.append("%s.%s: unknown resource" % (path, k))
            check_type("quantity", q, "%s.%s" % (path, k), errs)
    elif t in ("labels", "smap"):
        if not isinstance(v, dict):
            errs.append("%s: want an object of strings" % path)
            return
        for k, s in v.items():
            if not isinstance(s, str):
                errs.append("%s.%s: want a string, got %r" % (path, k, s))
            elif t == "labels" and (not LABEL_KEY.match(str(k)) or
                                    not LABEL_VAL.match(s)):
                errs.append("%s.%s: invalid label" % (path, k))
    else:
        raise AssertionError("schema type %r" % (t,))


def arg_after(args, flag):
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
    return None


def warren_rules(docs, errs):
    """Cross-document rules; |docs| is [(label, dict)] already schema-clean."""
    services = {d["metadata"]["name"]: (lbl, d) for lbl, d in docs
                if d["kind"] == "Service"}
    sets = [(lbl, d) for lbl, d in docs if d["kind"] == "StatefulSet"]
    if not sets:
        errs.append("no StatefulSet")
    for lbl, ss in sets:
        spec = ss["spec"]
        ns = ss["metadata"].get("namespace", "default")
        pod_labels = spec["template"].get("metadata", {}).get("labels", {})
        sel = spec["selector"].get("matchLabels", {})
        if not sel or any(pod_labels.get(k) != v for k, v in sel.items()):
            errs.append("%s: spec.selector does not match the pod labels" %
                        lbl)
        hl = services.get(spec["serviceName"])
        if not hl:
            errs.append("%s: spec.serviceName %r names no Service here" %
                        (lbl, spec["serviceName"]))
        else:
            hs = hl[1]["spec"]
            if hs.get("clusterIP") != "None":
                errs.append("%s: Service %s must be headless (clusterIP: "
                            "None) for dns: seeds" % (hl[0],
                                                      spec["serviceName"]))
            if hs.get("publishNotReadyAddresses") is not True:
                errs.append("%s: Service %s must publish not-ready addresses"
                            " (a node is ready only after it joined)" %
                            (hl[0], spec["serviceName"]))
        pod = spec["template"]["spec"]
        c = pod["containers"][0]
        args = c.get("args", [])
        join = arg_after(args, "--join") or ""
        want = "dns:%s.%s.svc.cluster.local:" % (spec["serviceName"], ns)
        if not join.startswith(want):
            errs.append("%s: --join %r should be %sPORT" % (lbl, join, want))
        probe = c.get("readinessProbe", {}).get("httpGet", {})
        if probe.get("path") != "/readyz":
            errs.append("%s: the readiness probe must GET /readyz" % lbl)
        drain = int(arg_after(args, "--drain-timeout") or 30000)
        wait = int(arg_after(args, "--drain-wait") or 2000)
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if grace * 1000 < drain + wait + 5000:
            errs.append("%s: terminationGracePeriodSeconds %d is not above "
                        "drain-wait + drain-timeout + 5 s" % (lbl, grace))
        for name, (slbl, s) in services.items():
            ssel = s["spec"].get("selector", {})
            if any(pod_labels.get(k) != v for k, v in ssel.items()) or \
                    not ssel:
                errs.append("%s: Service %s selects no warren pod" %
                            (slbl, name))


def check_file(path):
    errs = []
    try:
        with open(path) as f:
            raw = [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        return ["%s: %s" % (path, str(e).replace("\n", " "))]
    docs = []
    for i, d in enumerate(raw):
        if not isinstance(d, dict):
            errs.append("%s: doc %d: not an object" % (path, i + 1))
            continue
        key = (d.get("apiVersion"), d.get("kind"))
        name = (d.get("metadata") or {}).get("name", "?") \
            if isinstance(d.get("metadata"), dict) else "?"
        lbl = "%s: doc %d (%s %s)" % (path, i + 1, key[1], name)
        if key not in KINDS:
            errs.append("%s: unsupported apiVersion/kind %s/%s" %
                        (lbl, key[0], key[1]))
            continue
        e = []
        check_type(KINDS[key], d, "", e)
        errs += ["%s: %s" % (lbl, x.lstrip(".")) for x in e]
        if not e:
            docs.append((lbl, d))
    if not errs:
        warren_rules(docs, errs)
        errs = [e if e.startswith(path) else "%s: %s" % (path, e)
                for e in errs]
    return errs


def main():
    if len(sys.argv) < 2:
        print("usage: check_k8s.py FILE.yaml...", file=sys.stderr)
        return 2
    bad = 0
    for p in sys.argv[1:]:
        errs = check_file(p)
        if errs:
            bad += 1
            for e in errs:
                print(e)
        else:
            print("ok %s" % p)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
