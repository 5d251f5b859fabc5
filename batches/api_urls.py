from django.urls import path

from batches import api

urlpatterns = [
    path("v1/files", api.files, name="v1-files"),
    path("v1/files/<str:file_id>", api.file_detail, name="v1-file"),
    path("v1/files/<str:file_id>/content", api.file_content, name="v1-file-content"),
    path("v1/batches", api.batches, name="v1-batches"),
    path("v1/batches/<str:batch_id>", api.batch_detail, name="v1-batch"),
    path("v1/batches/<str:batch_id>/cancel", api.batch_cancel, name="v1-batch-cancel"),
    path("v1/batches/<str:batch_id>/pause", api.batch_pause, name="v1-batch-pause"),
    path("v1/batches/<str:batch_id>/resume", api.batch_resume, name="v1-batch-resume"),
]
