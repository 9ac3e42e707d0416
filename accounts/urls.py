from django.urls import path

from accounts.views import TokenObtainView, TokenRefreshTenantView

urlpatterns = [
    path("token", TokenObtainView.as_view(), name="token_obtain"),
    path("token/refresh", TokenRefreshTenantView.as_view(), name="token_refresh"),
]
