"""Every write of the Bulk Patient Create pipeline (SPEC §2, §3, §5, §7), one module per step:

- upload: create a request, its upload URL, take in the upload (local or S3), expire requests never uploaded
- parse: validate the file and store every row (under a lease; a large file in segments, in parallel)
- apply: create or update the patients of one chunk of rows, fairly across requests
- finish: wait for the medical data, write the result files, complete
- operations: confirm a dry run, cancel, resend a webhook; reprocess: validate and apply again
- sweep: the scheduler job that resumes whatever a crashed worker left
- lifecycle: what they share (file keys, result URLs, the webhook, failing a request)
- dispatch: the actor messages, sent by reference on commit

Each step reads what it needs from the database, does its work and records progress in the same
transaction, so any step can be re-run (duplicate message, crashed worker, sweeper) with the same result.
Status and phase changes go through `bulkimport.states`; vendor-specific statements through
`bulkimport.store`. Callers outside the package import from here.
"""

from bulkimport.services.apply import bulk_chunk_apply
from bulkimport.services.finish import bulk_documents_check, bulk_request_finish, on_document_queries_ended
from bulkimport.services.lifecycle import (
    BulkRequestError,
    bulk_absent_url,
    bulk_invalid_url,
    bulk_request_fail,
    bulk_result_url,
)
from bulkimport.services.operations import (
    OperationRefused,
    bulk_cancellations_settle,
    bulk_request_cancel,
    bulk_request_confirm,
    bulk_request_resend_webhook,
)
from bulkimport.services.parse import bulk_request_parse, bulk_segments_parse
from bulkimport.services.plan import PATIENT_ID_NAMESPACE
from bulkimport.services.reprocess import (
    ReprocessRefused,
    bulk_request_reprocess,
    bulk_request_reprocess_later,
    bulk_request_reprocess_queued,
)
from bulkimport.services.sweep import bulk_requests_resume, bulk_sweep
from bulkimport.services.upload import (
    UPLOAD_SALT,
    UploadRefused,
    bulk_request_create,
    bulk_request_expire,
    bulk_request_submit_file,
    bulk_requests_expire,
    bulk_upload_claim,
    bulk_upload_receive,
    bulk_upload_url,
)

__all__ = [
    "PATIENT_ID_NAMESPACE",
    "UPLOAD_SALT",
    "BulkRequestError",
    "OperationRefused",
    "ReprocessRefused",
    "UploadRefused",
    "bulk_absent_url",
    "bulk_cancellations_settle",
    "bulk_chunk_apply",
    "bulk_documents_check",
    "bulk_invalid_url",
    "bulk_request_cancel",
    "bulk_request_confirm",
    "bulk_request_create",
    "bulk_request_expire",
    "bulk_request_fail",
    "bulk_request_finish",
    "bulk_request_parse",
    "bulk_segments_parse",
    "bulk_request_reprocess",
    "bulk_request_reprocess_later",
    "bulk_request_reprocess_queued",
    "bulk_request_resend_webhook",
    "bulk_request_submit_file",
    "bulk_requests_expire",
    "bulk_requests_resume",
    "bulk_result_url",
    "bulk_sweep",
    "bulk_upload_claim",
    "bulk_upload_receive",
    "bulk_upload_url",
    "on_document_queries_ended",
]
