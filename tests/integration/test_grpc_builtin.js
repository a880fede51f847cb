// The built-in services every app gets: grpc.health.v1.Health (Check, Watch) and server
// reflection v1 and v1alpha, driven by grpc-js clients built from the public .proto files
// in proto/grpc/ (reflection answers are decoded as FileDescriptorProto with protobufjs).
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const http = require('node:http');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const descriptor = require('protobufjs/ext/descriptor');
const { startServer, ROOT } = require('./lib/server');

const PROTO = path.join(ROOT, 'proto');
function load(file) {
  const def = loader.loadSync(file, { includeDirs: [PROTO], keepCase: true, longs: String, enums: String, defaults: true });
  return grpc.loadPackageDefinition(def);
}
const health = load('grpc/health/v1/health.proto').grpc.health.v1;
const reflV1 = load('grpc/reflection/v1/reflection.proto').grpc.reflection.v1;
const reflV1a = load('grpc/reflection/v1alpha/reflection.proto').grpc.reflection.v1alpha;

function post(srv, p) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, path: p, method: 'POST' }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end();
  });
}

// One reflection stream; ask() sends a request and waits for its answer.
function reflector(Ctor, port) {
  const c = new Ctor.ServerReflection(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = c.ServerReflectionInfo();
  const waiting = [];
  call.on('data', (m) => waiting.shift()(m));
  call.on('error', () => {});
  return {
    ask(req) {
      return new Promise((resolve) => { waiting.push(resolve); call.write(req); });
    },
    close() { call.end(); c.close(); },
  };
}

function decodeFiles(resp) {
  return resp.file_descriptor_response.file_descriptor_proto.map((b) => descriptor.FileDescriptorProto.decode(b));
}

describe('built-in services', () => {
  let srv, hc;
  before(async () => {
    srv = await startServer({ app: 'apps/grpc_test.lua' });
    hc = new health.Health(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    hc.close();
    await srv.stop();
  });

  const check = (service) => new Promise((resolve) => hc.Check({ service }, (err, res) => resolve({ err, res })));

  test('health Check: the server, an app service, an unknown one', async () => {
    assert.equal((await check('')).res.status, 'SERVING');
    assert.equal((await check('user.UserService')).res.status, 'SERVING');
    assert.equal((await check('grpc.health.v1.Health')).res.status, 'SERVING');
    const { err } = await check('no.Such');
    assert.equal(err.code, grpc.status.NOT_FOUND);
  });

  test('health Watch sends the status, then each change', async () => {
    const call = hc.Watch({ service: 'watch.Me' });
    const got = [];
    let wake = null;
    call.on('data', (m) => { got.push(m.status); if (wake) wake(); });
    call.on('error', () => {});
    const next = async (n) => { while (got.length < n) await new Promise((r) => { wake = r; }); return got[n - 1]; };
    assert.equal(await next(1), 'SERVICE_UNKNOWN');
    assert.equal(await post(srv, '/health?service=watch.Me&status=SERVING'), 200);
    assert.equal(await next(2), 'SERVING');
    assert.equal(await post(srv, '/health?service=watch.Me&status=NOT_SERVING'), 200);
    assert.equal(await next(3), 'NOT_SERVING');
    assert.equal((await check('watch.Me')).res.status, 'NOT_SERVING');
    call.cancel();
  });

  for (const [name, Ctor] of [['v1', reflV1], ['v1alpha', reflV1a]]) {
    test(`reflection ${name}: list services, describe user.UserService`, async () => {
      const r = reflector(Ctor, srv.port);
      try {
        const list = await r.ask({ list_services: '*' });
        const names = list.list_services_response.service.map((s) => s.name).sort();
        assert.deepEqual(names, ['grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection',
          'grpc.reflection.v1alpha.ServerReflection', 'user.UserService']);
        assert.equal(list.original_request.list_services, '*');

        const bySym = await r.ask({ file_containing_symbol: 'user.UserService' });
        const files = decodeFiles(bySym);
        assert.equal(files[0].name, 'user.proto');
        assert.equal(files[0].package, 'user');
        const svc = files[0].service.find((s) => s.name === 'UserService');
        assert.deepEqual(svc.method.map((m) => m.name), ['GetUser', 'ListUsers', 'CreateUsers', 'ChatUsers']);
        const list2 = svc.method.find((m) => m.name === 'ListUsers');
        assert.equal(list2.serverStreaming, true);
        assert.equal(list2.inputType, '.user.Empty');

        const byType = await r.ask({ file_containing_symbol: 'user.User' });
        assert.equal(decodeFiles(byType)[0].name, 'user.proto');

        const byMethod = await r.ask({ file_containing_symbol: 'user.UserService.GetUser' });
        assert.equal(decodeFiles(byMethod)[0].name, 'user.proto');

        const self = await r.ask({ file_containing_symbol: `grpc.reflection.${name}.ServerReflection` });
        assert.equal(decodeFiles(self)[0].name, `grpc/reflection/${name}/reflection.proto`);

        const byName = await r.ask({ file_by_filename: 'grpc/health/v1/health.proto' });
        assert.equal(decodeFiles(byName)[0].package, 'grpc.health.v1');

        const missing = await r.ask({ file_containing_symbol: 'no.Such' });
        assert.equal(missing.error_response.error_code, grpc.status.NOT_FOUND);
        const noFile = await r.ask({ file_by_filename: 'nope.proto' });
        assert.equal(noFile.error_response.error_code, grpc.status.NOT_FOUND);

        const ext = await r.ask({ all_extension_numbers_of_type: 'user.User' });
        assert.equal(ext.all_extension_numbers_response.base_type_name, 'user.User');
        assert.deepEqual(ext.all_extension_numbers_response.extension_number, []);
      } finally {
        r.close();
      }
    });
  }
});
