# RT::Action::RtRelayWebhook - tells rt-relay that a ticket changed, without ever
# delaying or failing RT's own transaction.
#
# For every ticket transaction of a type rt-relay turns into a notification, it POSTs
# {"ticket_id":N,"transaction_id":M} (ids only: rt-relay reads the transaction itself
# from RT) to each configured relay, signed with HMAC-SHA256 over "<timestamp>.<body>":
#
#   X-RT-Relay-Timestamp: <Unix seconds>
#   X-RT-Relay-Signature: sha256=<hex>
#
# The post happens in a detached grandchild process with a 2 s timeout, so RT's request
# returns at once whatever the relay does; the call is made once and never retried (the
# relay's scheduled sync catches anything lost). See rt/scrip/README.md.
#
# Relays come from RT's configuration,
#   Set($RtRelayWebhooks, [ { url => 'https://relay.example/webhooks/rt', secret => '...' } ]);
# and from every *.json file {"url": ..., "secret": ...} in $RtRelayWebhookDir
# (default: $VarPath/rt-relay-webhooks), which a local test instance uses to add relays
# without restarting RT.

package RT::Action::RtRelayWebhook;

use strict;
use warnings;
use base 'RT::Action';

use Digest::SHA qw(hmac_sha256_hex);
use HTTP::Tiny;
use JSON ();
use POSIX ();

our $TIMEOUT = 2;

# RT transaction types that can be events (rt-relay's catalogue); others are not posted.
my %EVENT_TYPES = map { $_ => 1 }
    qw(Create Status Set Give Take Untake Steal Correspond Comment);

sub Prepare { return 1 }

sub Commit {
    my $self = shift;
    # Nothing here may fail RT's transaction.
    eval { $self->_Notify; 1 } or RT->Logger->warning("rt-relay webhook skipped: $@");
    return 1;
}

sub _Targets {
    my @targets = grep { ref $_ eq 'HASH' && $_->{url} && $_->{secret} }
        @{ RT->Config->Get('RtRelayWebhooks') || [] };
    my $dir = RT->Config->Get('RtRelayWebhookDir') || "$RT::VarPath/rt-relay-webhooks";
    if ( opendir my $dh, $dir ) {
        for my $file ( sort grep {/\.json\z/} readdir $dh ) {
            open my $fh, '<', "$dir/$file" or next;
            my $text = do { local $/; <$fh> };
            close $fh;
            my $t = eval { JSON::decode_json($text) };
            push @targets, $t if ref $t eq 'HASH' && $t->{url} && $t->{secret};
        }
        closedir $dh;
    }
    return @targets;
}

sub _Notify {
    my $self = shift;
    my $txn  = $self->TransactionObj;
    return unless $txn && $txn->id && ( $txn->ObjectType || '' ) eq 'RT::Ticket';
    return unless $EVENT_TYPES{ $txn->Type || '' };
    my @targets = _Targets() or return;
    my $body = sprintf '{"ticket_id":%d,"transaction_id":%d}', $txn->ObjectId, $txn->id;

    my $child = fork;
    die "cannot fork: $!\n" unless defined $child;
    if ($child) {
        # The child forks the poster and exits at once: reap it, never wait for the post.
        waitpid $child, 0;
        return;
    }
    my $poster = fork;
    POSIX::_exit(0) if !defined $poster || $poster;

    # The grandchild: let go of everything RT holds (its client socket, database handle),
    # post, and leave without running any destructor of RT's objects.
    POSIX::setsid();
    POSIX::close($_) for 3 .. 255;
    eval {
        my $http = HTTP::Tiny->new( timeout => $TIMEOUT, agent => 'rt-relay-scrip/1' );
        for my $target (@targets) {
            my $ts = time;
            $http->post(
                $target->{url},
                {   headers => {
                        'Content-Type'         => 'application/json',
                        'X-RT-Relay-Timestamp' => $ts,
                        'X-RT-Relay-Signature' => 'sha256=' . hmac_sha256_hex( "$ts.$body", $target->{secret} ),
                    },
                    content => $body,
                }
            );
        }
        1;
    };
    POSIX::_exit(0);
}

1;
