from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from accounts import schema  # noqa: F401  (drf-spectacular: the bearer scheme)
        from accounts.authentication import forget_user

        # The API's cached user records (accounts.authentication) must drop on any change.
        post_save.connect(forget_user, sender=self.get_model("User"), dispatch_uid="forget_user")
        post_delete.connect(
            forget_user, sender=self.get_model("User"), dispatch_uid="forget_user_deleted"
        )
