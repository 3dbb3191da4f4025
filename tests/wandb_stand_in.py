"""A stand-in W&B server on loopback, for `wandb sync` and wandb-workspaces: no W&B server can run here.

A few lines of HTTP on 127.0.0.1 that answer what wandb's own machinery asks, by GraphQL operation, and record
every request: `wandb sync` (UpsertBucket, CreateRunFiles, the file stream, file uploads, and the artifact calls a
run's logged tables need: CreateArtifact, CreateArtifactFiles, CreateArtifactManifest, CommitArtifact) and what
wandb-workspaces needs to save a Report through `wandb.Api` (the viewer, the entity's projects, the project's
internal id, upsertView). With WANDB_BASE_URL pointed at it, runs and Reports go through wandb's real clients, not
a mock of them. It checks nothing a real server would (a run's history, an artifact's digest, a Report's spec).
Two ways to fail, as a real server can: `refused` run ids are refused (403, permission denied) and
`artifacts=False` answers artifact calls with nothing, on which wandb-core's `wandb sync` crashes (a nil artifact).

`python tests/wandb_stand_in.py` serves one and prints its URL, to try `ghostsweep sync` by hand.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ENTITY = "lab"
REPORT_ID = "VmlldzoxMjM0NQ=="
OPERATION = re.compile(r"\b(?:query|mutation)\s+(\w+)")
ARTIFACT_CALLS = ("CreateArtifact", "CreateArtifactFiles", "CreateArtifactManifest", "UpdateArtifactManifest",
                  "CommitArtifact", "UseArtifact")


class StandInServer(ThreadingHTTPServer):
    """What wandb talks to, answering as W&B does just enough for runs to be pushed and a Report saved."""

    def __init__(self, artifacts: bool = True) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.artifacts = artifacts
        self.refused: set[str] = set()
        # (method, path, GraphQL operation or "", GraphQL variables)
        self.requests: list[tuple[str, str, str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.views: dict[str, str] = {}  # Report id -> its last spec

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def operations(self) -> list[str]:
        return [operation for _, _, operation, _ in self.requests if operation]

    def upserted_runs(self) -> list[str]:
        """The run ids `wandb sync` created or updated, in order (each run upserts more than once)."""
        return [variables["name"] for _, _, operation, variables in self.requests if operation == "UpsertBucket"]

    def committed_artifacts(self) -> list[dict[str, Any]]:
        """The CreateArtifact inputs of the artifacts that were committed."""
        created = {f"artifact-{index}": variables["input"] for index, (_, _, operation, variables) in enumerate(
            self.requests) if operation == "CreateArtifact"}
        return [created[variables["artifactID"]] for _, _, operation, variables in self.requests
                if operation == "CommitArtifact"]

    def answer(self, operation: str, variables: dict[str, Any], index: int) -> dict[str, Any] | None:
        """The `data` of the answer to one GraphQL call; None to refuse it."""
        if operation in ARTIFACT_CALLS and not self.artifacts:
            return {}
        if operation == "UpsertBucket" and (variables.get("name") or variables.get("id")) in self.refused:
            return None
        if operation == "UpsertBucket":
            name, project = variables.get("name") or variables.get("id"), variables.get("project") or "ghostsweep"
            return {"upsertBucket": {"inserted": True, "bucket": {
                "id": f"id-{name}", "name": name, "displayName": name, "description": "", "config": "{}",
                "sweepName": None, "historyLineCount": 0,
                "project": {"id": "p1", "name": project, "entity": {"id": "e1", "name": ENTITY}}}}}
        if operation == "CreateRunFiles":
            return {"createRunFiles": {"runID": variables["run"], "uploadHeaders": [], "files": [
                {"name": name, "uploadUrl": f"{self.url}/upload/{name}"} for name in variables["files"]]}}
        if operation == "CreateArtifact":
            return {"createArtifact": {"artifact": {
                "id": f"artifact-{index}", "state": "PENDING", "digest": variables["input"].get("digest"),
                "artifactSequence": {"id": "sequence", "latestArtifact": None}}}}
        if operation == "CreateArtifactFiles":
            files = variables["input"]["artifactFiles"]
            return {"createArtifactFiles": {"files": {"edges": [{"node": {
                "id": f"file-{number}", "name": file["name"], "displayName": file["name"],
                "storagePath": f"storage/{file['md5']}", "uploadUrl": f"{self.url}/upload/artifact/{file['md5']}",
                "uploadHeaders": [], "uploadMultipartUrls": None, "artifact": {"id": file["artifactID"]}}}
                for number, file in enumerate(files)]}}}
        if operation in ("CreateArtifactManifest", "UpdateArtifactManifest"):
            key = operation[0].lower() + operation[1:]
            return {key: {"artifactManifest": {"id": f"manifest-{index}", "file": {
                "id": f"manifest-file-{index}", "name": "wandb_manifest.json", "displayName": "wandb_manifest.json",
                "uploadUrl": f"{self.url}/upload/manifest-{index}", "uploadHeaders": []}}}}
        if operation == "CommitArtifact":
            return {"commitArtifact": {"artifact": {"id": variables["artifactID"], "digest": "committed"}}}
        if operation == "UseArtifact":
            return {"useArtifact": {"artifact": {"id": variables["input"].get("artifactID")}}}
        if operation == "GetProjects":  # wandb.Api().projects(entity): the projects runs went to
            names = {variables_["project"] for _, _, op, variables_ in self.requests
                     if op == "UpsertBucket" and variables_.get("project")}
            return {"models": {"edges": [{"node": {"id": f"p-{name}", "name": name, "entityName": ENTITY,
                                                   "createdAt": "2026-01-01T00:00:00", "isBenchmark": False,
                                                   "user": None}}
                                         for name in sorted(names)],
                               "pageInfo": {"endCursor": None, "hasNextPage": False}}}
        if operation == "ProjectInternalId":
            return {"project": {"internalId": "UHJvamVjdDo0Mg=="}}
        if operation == "upsertView":
            view_id = variables.get("id") or REPORT_ID
            self.views[view_id] = variables["spec"]
            return {"upsertView": {"view": {"id": view_id, "spec": variables["spec"]}}}
        return {"viewer": {"id": "v", "entity": ENTITY, "username": "u", "flags": "{}", "teams": {"edges": []}},
                "serverInfo": {"features": []}}


class _Handler(BaseHTTPRequestHandler):
    server: StandInServer

    def _body(self) -> bytes:
        """The request's body, whole: file uploads come chunked (an unread body resets the connection)."""
        if self.headers.get("transfer-encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("content-length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)

    def _answer(self) -> None:
        body = self._body()
        request = json.loads(body) if body.startswith(b"{") else {}
        query, variables = request.get("query", ""), request.get("variables") or {}
        operation = request.get("operationName") or (match.group(1) if (match := OPERATION.search(query)) else "")
        with self.server.lock:
            index = len(self.server.requests)
            self.server.requests.append((self.command, self.path, operation, variables))
        data = self.server.answer(operation, variables, index) if query else {}
        if data is None:
            self.send_response(403)
            out = json.dumps({"errors": [{"message": "permission denied"}]}).encode()
        else:
            self.send_response(200)
            out = json.dumps({"data": data} if query else {}).encode()
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_POST = do_PUT = do_GET = _answer

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = StandInServer()
    print(f"WANDB_BASE_URL={server.url}", flush=True)
    server.serve_forever()
