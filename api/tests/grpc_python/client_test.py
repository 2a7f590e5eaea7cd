"""voucher-api's gRPC door seen from outside Rust: grpcio with stubs generated from
api/proto/voucher/v1/voucher.proto, against the real binary that grpc_python.sh starts.

Usage: client_test.py ADDRESS TOKEN STUBS_DIR
"""

import sys
import unittest

ADDRESS, TOKEN, STUBS = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, STUBS)

import grpc  # noqa: E402
from google.rpc import error_details_pb2  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc  # noqa: E402
from grpc_status import rpc_status  # noqa: E402
from voucher.v1 import voucher_pb2, voucher_pb2_grpc  # noqa: E402

AUTH = (("authorization", f"Bearer {TOKEN}"),)


def contract(**overrides):
    fields = dict(
        customer_id=123,
        country_code="Peru",
        last_order_ts="2021-10-26 00:00:00",
        first_order_ts="2021-10-26 00:00:00",
        total_orders=14,
        segment_name="frequent_segment",
    )
    fields.update(overrides)
    return voucher_pb2.VoucherRequest(**{k: v for k, v in fields.items() if v is not None})


class GrpcDoor(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.channel = grpc.insecure_channel(ADDRESS)
        grpc.channel_ready_future(cls.channel).result(timeout=10)
        cls.stub = voucher_pb2_grpc.VoucherServiceStub(cls.channel)

    def test_get_voucher_answers_the_contract_example(self):
        answer = self.stub.GetVoucher(contract(), metadata=AUTH, timeout=5)
        self.assertEqual(answer.voucher, 2640)
        self.assertEqual(answer.segment, "14-37")
        self.assertEqual(answer.segment_name, "frequent_segment")
        self.assertRegex(answer.version, r"^\d{8}T\d{6}Z$")

    def test_bad_fields_are_invalid_argument_with_bad_request_details(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.stub.GetVoucher(
                contract(total_orders=-1, country_code=None), metadata=AUTH, timeout=5
            )
        error = caught.exception
        self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT)
        status = rpc_status.from_call(error)
        self.assertIsNotNone(status, "the status carries details")
        bad_request = error_details_pb2.BadRequest()
        self.assertTrue(status.details[0].Unpack(bad_request))
        violations = [(v.field, v.reason) for v in bad_request.field_violations]
        self.assertEqual(
            violations, [("country_code", "MISSING"), ("total_orders", "GREATER_THAN_EQUAL")]
        )

    def test_an_uncovered_value_is_not_found(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.stub.GetVoucher(contract(total_orders=500), metadata=AUTH, timeout=5)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("total_orders = 500", caught.exception.details())

    def test_without_the_token_calls_are_unauthenticated(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.stub.GetVoucher(contract(), timeout=5)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED)

    def test_the_stream_answers_each_request_in_order(self):
        requests = [contract(), contract(total_orders=-1), contract(total_orders=500)] * 50
        results = list(self.stub.ScoreVouchers(iter(requests), metadata=AUTH, timeout=10))
        self.assertEqual([r.index for r in results], list(range(len(requests))))
        kinds = [r.WhichOneof("outcome") for r in results[:3]]
        self.assertEqual(kinds, ["voucher", "invalid", "no_segment"])
        self.assertEqual(results[0].voucher.voucher, 2640)
        self.assertEqual(results[1].invalid.violations[0].field, "total_orders")

    def test_a_huge_field_is_invalid_argument_with_a_bounded_status(self):
        # grpcio refuses statuses over its metadata limit (8 KiB) as RESOURCE_EXHAUSTED: an echo
        # of a 4,000-byte value in the message and in the details once passed it.
        with self.assertRaises(grpc.RpcError) as caught:
            self.stub.GetVoucher(contract(country_code="Ω" * 2000), metadata=AUTH, timeout=5)
        error = caught.exception
        self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT, error.details())
        self.assertLess(len(error.details()), 1000)
        self.assertIn("4000 bytes", error.details())

    def test_a_message_that_is_not_a_voucher_request_is_invalid_argument(self):
        raw = self.channel.unary_unary("/voucher.v1.VoucherService/GetVoucher")
        with self.assertRaises(grpc.RpcError) as caught:
            # Field 2 (country_code, a string) holding bytes that are not UTF-8.
            raw(b"\x12\x02\xff\xfe", metadata=AUTH, timeout=5)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(grpc.RpcError) as caught:
            raw(b"\x12\x02\xff\xfe", timeout=5)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED,
                         "the token is checked before the message is read")

    def test_health_is_serving(self):
        health = health_pb2_grpc.HealthStub(self.channel)
        for service in ("", "voucher.v1.VoucherService"):
            response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            self.assertEqual(response.status, health_pb2.HealthCheckResponse.SERVING, service)

    def test_reflection_lists_the_service(self):
        reflection = reflection_pb2_grpc.ServerReflectionStub(self.channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        response = next(reflection.ServerReflectionInfo(iter([request]), timeout=5))
        names = [s.name for s in response.list_services_response.service]
        self.assertIn("voucher.v1.VoucherService", names)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
