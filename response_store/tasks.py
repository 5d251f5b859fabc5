from celery import shared_task

from response_store import services


@shared_task(name="response_store.responses_expire", ignore_result=True)
def responses_expire() -> int:
    return services.responses_expire()
