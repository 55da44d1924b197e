// Independent validator for the agreement test with the broker's C validator
// (tests/tools/schema_check.c): same command line, same input, same first word
// of every output line.
//
// Usage: node tests/schema/ajv-check.mjs SCHEMA_DIR SCHEMA_ID < instances.jsonl
// Prints one line per input line: "valid", "invalid <errors as JSON>", or
// "unparsable <message>" for a line that is not JSON. Exit status: 0, 1 if a
// line was unparsable, 2 if the schemas do not load.
//
// Loads every *.json of SCHEMA_DIR like broker/schema.c does: a vocabulary file
// (an object with "sets" and no "$schema") becomes
//   {"$id": FILE, "$defs": {SET: {"type": "string", "enum": [codes...]}}}
// and a schema's $id must equal its file name.
//
// ajv runs in strict mode (strict: true: strictSchema, strictNumbers,
// strictTypes, strictTuples and strictRequired all throw). One option is set on
// top of it: allowUnionTypes, because cloudevent.v1.json types its extension
// attributes as ["string", "integer", "boolean"], which is plain JSON Schema but
// which strictTypes otherwise refuses. Only the date-time format is added: it is
// the one format the C validator implements, so any other "format" fails to
// load here as it does there.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

function fail(msg) {
    process.stderr.write(msg + "\n");
    process.exit(2);
}

if (process.argv.length !== 4) fail("usage: node ajv-check.mjs SCHEMA_DIR SCHEMA_ID < instances.jsonl");
const [dir, schemaId] = process.argv.slice(2);

function vocabularyToSchema(file, vocab) {
    const defs = {};
    for (const [name, set] of Object.entries(vocab.sets)) {
        if (!Array.isArray(set.terms) || set.terms.length === 0)
            fail(`${file}: set '${name}' needs a non-empty "terms" array`);
        const codes = [];
        for (const [i, term] of set.terms.entries()) {
            if (typeof term.code !== "string" || term.code === "" || typeof term.label !== "string" ||
                typeof term.definition !== "string")
                fail(`${file}: /sets/${name}/terms/${i} needs code, label and definition`);
            if (codes.includes(term.code)) fail(`${file}: code '${term.code}' appears twice in set '${name}'`);
            codes.push(term.code);
        }
        defs[name] = { type: "string", enum: codes };
    }
    return { $id: file, $defs: defs };
}

function isVocabulary(root) {
    return root !== null && typeof root === "object" && !Array.isArray(root) &&
        root.sets !== null && typeof root.sets === "object" && !Array.isArray(root.sets) &&
        !("$schema" in root);
}

const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
addFormats(ajv, ["date-time"]);

let files;
try {
    files = fs.readdirSync(dir).filter((f) => f.endsWith(".json") && f.length > 5 && !f.startsWith(".")).sort();
} catch (e) {
    fail(`cannot open schema directory ${dir}: ${e.message}`);
}
for (const file of files) {
    let root;
    try {
        root = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"));
    } catch (e) {
        fail(`${path.join(dir, file)}: ${e.message}`);
    }
    if (isVocabulary(root)) root = vocabularyToSchema(file, root);
    if (root !== null && typeof root === "object" && !Array.isArray(root)) {
        if (root.$id === undefined) root = { ...root, $id: file };
        else if (root.$id !== file) fail(`${path.join(dir, file)}: $id "${root.$id}" must equal the file name`);
    }
    try {
        ajv.addSchema(root);
    } catch (e) {
        fail(`${file}: ${e.message}`);
    }
}
let validate;
try {
    validate = ajv.getSchema(schemaId);
} catch (e) {
    // compiling (strict mode checks, $ref resolution) happens here
    fail(`${schemaId}: ${e.message}`);
}
if (!validate) fail(`no schema ${schemaId} is loaded`);

function describe(err) {
    let msg = err.message || err.keyword;
    if (err.keyword === "enum") msg += ": " + err.params.allowedValues.map((v) => JSON.stringify(v)).join(", ");
    else if (err.keyword === "const") msg += " " + JSON.stringify(err.params.allowedValue);
    else if (err.keyword === "additionalProperties") msg += ": " + err.params.additionalProperty;
    return { pointer: err.instancePath, keyword: err.keyword, message: msg };
}

// Lines as getline(3) sees them: split on "\n" only; a last line without a
// newline still counts.
const input = fs.readFileSync(0, "utf8");
const lines = input.split("\n");
if (lines[lines.length - 1] === "") lines.pop();
const out = [];
let rc = 0;
for (const line of lines) {
    let instance;
    try {
        instance = JSON.parse(line);
    } catch (e) {
        out.push("unparsable " + e.message);
        rc = 1;
        continue;
    }
    if (validate(instance)) out.push("valid");
    else out.push("invalid " + JSON.stringify(validate.errors.map(describe)));
}
process.stdout.write(out.length ? out.join("\n") + "\n" : "");
process.exitCode = rc;
